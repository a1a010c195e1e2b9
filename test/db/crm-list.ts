/**
 * The external audience the pooled-path tests list members in before their profiles exist
 * (test/db/pg-membership-batch.test.ts, pg-ingest-writer.test.ts): a CRM list keyed by email,
 * with a points column, so that a membership carries a payload. Made and ingested at `now`.
 */
import type { Connection } from '../../src/db/index.js';
import {
  createExternalAudience,
  type ExternalAudience,
} from '../../src/domain/external-audiences/external-audiences.js';
import { runListIngestion } from '../domain/list-ingestion.js';

export async function ingestCrmList(
  conn: Connection,
  sandboxId: number,
  list: { dir: string; name: string; text: string; now: number },
): Promise<ExternalAudience> {
  const external = await createExternalAudience(
    conn,
    sandboxId,
    {
      name: 'CRM list',
      namespace: 'crm',
      ttlInDays: 10,
      fields: [
        { name: 'email', type: 'STRING', identityNamespace: 'email' },
        { name: 'points', type: 'NUMBER', identityNamespace: null },
      ],
    },
    list.now,
  );
  await runListIngestion(conn, sandboxId, external, list);
  return external;
}
