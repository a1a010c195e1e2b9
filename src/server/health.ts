/**
 * The database's health as the server sees it: once a statement meets a damaged page, /readyz
 * fails, writes stop and background work stops, and one fatal line says why.
 */
import { GraphQLError, getOperationAST } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Logger } from 'pino';
import { isCorruption } from '../db/integrity.js';
import { statements } from '../db/statement.js';
import type { Store } from '../db/store.js';

export interface DatabaseHealth {
  /** Called with any error: a corruption error marks the database damaged (once). */
  report(err: unknown): void;
  /** The damage, when there is some. */
  damage(): string | undefined;
  /** A round trip; throws (and reports) when the database cannot be read. */
  check(): Promise<void>;
  /** An envelop plugin refusing mutations once the database is damaged. */
  refuseWrites: Plugin;
}

const q = statements('health', {
  roundTrip: { sqlite: 'SELECT 1 AS one', postgres: 'SELECT 1 AS one' },
});

export function databaseHealth(conn: Store, log: Logger, onDamage: () => void): DatabaseHealth {
  let damage: string | undefined;
  const report = (err: unknown) => {
    if (damage !== undefined || !isCorruption(err)) return;
    damage = (err as Error).message;
    log.fatal({ err }, 'the database is damaged: /readyz answers 503 and writes are refused; restore a good copy');
    onDamage();
  };
  return {
    report,
    damage: () => damage,
    async check() {
      try {
        await conn.get(q.roundTrip);
      } catch (err) {
        report(err);
        throw err;
      }
    },
    refuseWrites: {
      onExecute({ args, setResultAndStopExecution }) {
        if (damage === undefined) return;
        if (getOperationAST(args.document, args.operationName)?.operation !== 'mutation') return;
        setResultAndStopExecution({
          errors: [
            new GraphQLError(`The database is damaged (${damage}); writes are stopped until a good copy is restored`, {
              extensions: { code: 'INTERNAL' },
            }),
          ],
        });
      },
    },
  };
}
