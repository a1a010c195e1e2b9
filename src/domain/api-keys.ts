/**
 * API keys (docs/api.md "Auth"): a key belongs to one or more sandboxes and carries scopes.
 * Queries need `read`, mutations `write`, key management and schema changes `admin`. Only a
 * hash of each key is stored; the key itself is shown once, when it is made.
 */
import { createHash, randomBytes } from 'node:crypto';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { statements } from '../db/statement.js';
import type { Store } from '../db/store.js';
import { writeUnit } from '../db/unit.js';
import { badInput, DomainError, notFound } from './errors.js';
import { findSandbox } from './sandboxes.js';

const SCOPES = ['read', 'write', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

interface ApiKey {
  id: number;
  name: string;
  /** The key's first characters, to tell keys apart (never enough to use it). */
  prefix: string;
  scopes: Scope[];
  sandboxes: string[];
  createdAt: number;
  revokedAt: number | null;
}

/** Who a request is: a key's scopes and sandbox ids, or everything when the server runs open. */
export interface Principal {
  keyId: number | null;
  scopes: ReadonlySet<Scope>;
  /** null: every sandbox. */
  sandboxIds: ReadonlySet<number> | null;
}

const OPEN_PRINCIPAL: Principal = { keyId: null, scopes: new Set(SCOPES), sandboxIds: null };

const KEY_PREFIX = 'segql_';

// Every column, as Drizzle's select() gave them.
const COLUMNS = 'id, name, prefix, key_hash AS "keyHash", scopes, created_at AS "createdAt", revoked_at AS "revokedAt"';

const q = statements('api-keys', {
  insert: {
    sqlite: 'INSERT INTO api_keys (name, prefix, key_hash, scopes, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id',
    postgres:
      'INSERT INTO api_keys (name, prefix, key_hash, scopes, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id',
  },
  linkSandbox: {
    sqlite: 'INSERT INTO api_key_sandboxes (key_id, sandbox_id) VALUES (?, ?)',
    postgres: 'INSERT INTO api_key_sandboxes (key_id, sandbox_id) VALUES ($1, $2)',
  },
  /** What moves when a key is made or revoked (a key is never deleted). */
  ringStamp: {
    sqlite: 'SELECT count(*) AS made, count(revoked_at) AS revoked, coalesce(max(id), 0) AS newest FROM api_keys',
    postgres:
      'SELECT count(*)::int AS made, count(revoked_at)::int AS revoked, coalesce(max(id), 0) AS newest FROM api_keys',
  },
  all: {
    sqlite: `SELECT ${COLUMNS} FROM api_keys ORDER BY id`,
    postgres: `SELECT ${COLUMNS} FROM api_keys ORDER BY id`,
  },
  // No order, as the Drizzle chain had none: a key's sandboxes come in the join's order.
  sandboxNames: {
    sqlite:
      'SELECT k.key_id AS "keyId", s.name FROM api_key_sandboxes AS k INNER JOIN sandboxes AS s ON s.id = k.sandbox_id',
    postgres:
      'SELECT k.key_id AS "keyId", s.name FROM api_key_sandboxes AS k INNER JOIN sandboxes AS s ON s.id = k.sandbox_id',
  },
  revoke: {
    sqlite: 'UPDATE api_keys SET revoked_at = ? WHERE id = ?',
    postgres: 'UPDATE api_keys SET revoked_at = $1 WHERE id = $2',
  },
  // What the key ring reads: every key (revoked ones say a key was made), and the live keys' links.
  ring: {
    sqlite: 'SELECT id, key_hash AS "hash", scopes, revoked_at AS "revokedAt" FROM api_keys',
    postgres: 'SELECT id, key_hash AS "hash", scopes, revoked_at AS "revokedAt" FROM api_keys',
  },
  linksOf: {
    sqlite:
      'SELECT key_id AS "keyId", sandbox_id AS "sandboxId" FROM api_key_sandboxes WHERE key_id IN (SELECT value FROM json_each(?))',
    postgres:
      'SELECT key_id AS "keyId", sandbox_id AS "sandboxId" FROM api_key_sandboxes WHERE key_id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($1 AS jsonb)))',
  },
});

interface KeyRow {
  id: number;
  name: string;
  prefix: string;
  keyHash: string;
  scopes: string;
  createdAt: number;
  revokedAt: number | null;
}

function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** Makes a key; the returned `key` is the only time its plaintext exists outside the caller. */
export async function createApiKey(
  conn: Store,
  input: { name: string; sandboxes: readonly string[]; scopes: readonly string[] },
  now = Date.now(),
): Promise<{ key: string; apiKey: ApiKey }> {
  const name = input.name.trim();
  if (name === '') throw badInput('A key needs a name', 'name');
  if (input.sandboxes.length === 0) throw badInput('A key needs at least one sandbox', 'sandboxes');
  const unknown = input.scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
  if (unknown.length > 0 || input.scopes.length === 0) {
    throw badInput(
      `Scopes are one or more of ${SCOPES.join(', ')}; got ${input.scopes.join(', ') || 'none'}`,
      'scopes',
    );
  }
  const scopes = SCOPES.filter((s) => input.scopes.includes(s));
  // A typo in a sandbox name must not mint a key for a new, empty sandbox.
  const bound: { id: number; name: string }[] = [];
  for (const name of new Set(input.sandboxes)) {
    const sandbox = await findSandbox(conn, name);
    if (!sandbox) throw notFound(`Sandbox "${name}" does not exist; create it first (createSandbox)`, name);
    bound.push(sandbox);
  }
  const key = `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
  const id = await writeUnit(conn, async (tx) => {
    const row = (await tx.get<{ id: number }>(q.insert, [
      name,
      key.slice(0, KEY_PREFIX.length + 6),
      hashKey(key),
      JSON.stringify(scopes),
      now,
    ]))!;
    for (const sandbox of bound) {
      await tx.run(q.linkSandbox, [row.id, sandbox.id]);
    }
    return row.id;
  });
  return { key, apiKey: (await listApiKeys(conn)).find((k) => k.id === id)! };
}

export async function listApiKeys(conn: Store): Promise<ApiKey[]> {
  const rows = await conn.all<KeyRow>(q.all);
  const links = await conn.all<{ keyId: number; name: string }>(q.sandboxNames);
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    prefix: r.prefix,
    scopes: JSON.parse(r.scopes) as Scope[],
    sandboxes: links.filter((l) => l.keyId === r.id).map((l) => l.name),
    createdAt: r.createdAt,
    revokedAt: r.revokedAt,
  }));
}

/** Revokes a key by id or by its prefix; a revoked key fails like an unknown one. */
export async function revokeApiKey(conn: Store, idOrPrefix: string, now = Date.now()): Promise<ApiKey> {
  const key = (await listApiKeys(conn)).find((k) => String(k.id) === idOrPrefix || k.prefix === idOrPrefix);
  if (!key) throw notFound(`No API key ${idOrPrefix}`);
  await conn.run(q.revoke, [key.revokedAt ?? now, key.id]);
  return { ...key, revokedAt: key.revokedAt ?? now };
}

/**
 * The live keys by hash, kept in memory: a request costs no statement. They are re-read when the
 * stamp file changes, which `touchKeyStamp` does after every change made through this module
 * (the `segql keys` command runs in another process than the server). On PostgreSQL the nodes
 * share no data directory, so the stamp is read from the keys table (a count and a maximum,
 * at each watch interval).
 *
 * Whether the server runs open is decided once, when it starts: only with no key ever made (a
 * revoked key counts) and only on a loopback address. An open server becomes keyed when a key is
 * made; a keyed one never opens again, so revoking the last key locks it rather than opening it.
 */
export class KeyRing {
  private stamp: string | undefined;
  private byHash = new Map<string, Principal>();
  private anyMade = false;
  private open = false;
  private readonly revokedListeners = new Set<(keyIds: number[]) => void>();

  constructor(
    private readonly conn: Store,
    private readonly stampFile: string,
    private readonly log?: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void },
  ) {}

  /** Whether a key was ever made in this database (revoked ones included). */
  async everMade(): Promise<boolean> {
    await this.load();
    return this.anyMade;
  }

  /** Decides, once, at start, whether the server runs open; returns the decision. */
  async decideOpen(loopback: boolean): Promise<boolean> {
    this.open = loopback && !(await this.everMade());
    return this.open;
  }

  /** Whether requests need a key now. */
  async required(): Promise<boolean> {
    await this.load();
    return !this.open;
  }

  /** The principal of a request's `authorization` value (`Bearer <key>`), or why it has none. */
  async authenticate(authorization: string | undefined | null): Promise<Principal> {
    const keys = await this.load();
    if (this.open) return OPEN_PRINCIPAL;
    if (keys.size === 0) {
      throw new DomainError(
        'UNAUTHENTICATED',
        'This server requires API keys and none is live (all were revoked): make one with "segql keys create"',
      );
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!match) throw new DomainError('UNAUTHENTICATED', 'An API key is required: send "authorization: Bearer <key>"');
    const principal = keys.get(hashKey(match[1]!));
    if (!principal) throw new DomainError('UNAUTHENTICATED', 'The API key is unknown or revoked');
    return principal;
  }

  /** Calls `listener` with the ids of keys that stopped being live (revoked) at each re-read. */
  onRevoked(listener: (keyIds: number[]) => void): () => void {
    this.revokedListeners.add(listener);
    return () => this.revokedListeners.delete(listener);
  }

  /**
   * Re-reads the keys every `intervalMs` when the stamp changed, so a revocation reaches open
   * subscriptions without waiting for a request. Returns the function that stops watching.
   */
  watch(intervalMs = 250): () => void {
    const timer = setInterval(() => {
      this.load().catch((err: unknown) => this.log?.error({ err }, 'reading API keys failed'));
    }, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  private async currentStamp(): Promise<string> {
    if (this.conn.dialect === 'postgres') {
      const row = (await this.conn.get<{ made: number; revoked: number; newest: number }>(q.ringStamp))!;
      return `${row.made}:${row.revoked}:${row.newest}`;
    }
    const stat = statSync(this.stampFile, { throwIfNoEntry: false });
    return stat ? `${stat.mtimeMs}:${stat.size}:${stat.ino}` : 'none';
  }

  private async load(): Promise<Map<string, Principal>> {
    const stamp = await this.currentStamp();
    if (stamp === this.stamp) return this.byHash;
    const all = await this.conn.all<{ id: number; hash: string; scopes: string; revokedAt: number | null }>(q.ring);
    const rows = all.filter((r) => r.revokedAt === null);
    const links =
      rows.length === 0
        ? []
        : await this.conn.all<{ keyId: number; sandboxId: number }>(q.linksOf, [JSON.stringify(rows.map((r) => r.id))]);
    const before = [...this.byHash.values()].map((p) => p.keyId);
    this.byHash = new Map(
      rows.map((r) => [
        r.hash,
        {
          keyId: r.id,
          scopes: new Set(JSON.parse(r.scopes) as Scope[]),
          sandboxIds: new Set(links.filter((l) => l.keyId === r.id).map((l) => l.sandboxId)),
        },
      ]),
    );
    this.anyMade = all.length > 0;
    if (this.open && this.anyMade) {
      this.open = false;
      this.log?.warn({}, 'an API key was made: this server now requires keys on every request');
    }
    this.stamp = stamp;
    if (!this.open && this.anyMade && rows.length === 0) {
      this.log?.warn({}, 'every API key is revoked: all requests are refused (UNAUTHENTICATED) until one is made');
    }
    const live = new Set(rows.map((r) => r.id));
    const revoked = before.filter((id): id is number => id !== null && !live.has(id));
    if (revoked.length > 0) for (const listener of this.revokedListeners) listener(revoked);
    return this.byHash;
  }
}

/** The file a KeyRing watches on SQLite, in the server's data directory. */
export function keyStampFile(dataDir: string): string {
  return join(dataDir, 'api-keys.stamp');
}

/** Tells running servers on this data directory that the keys changed. */
export function touchKeyStamp(dataDir: string): void {
  writeFileSync(keyStampFile(dataDir), `${Date.now()} ${randomBytes(8).toString('hex')}\n`);
}

/** FORBIDDEN unless the principal may act in the sandbox. */
export function assertSandboxAllowed(principal: Principal, sandbox: { id: number; name: string }): void {
  if (principal.sandboxIds && !principal.sandboxIds.has(sandbox.id)) {
    throw new DomainError('FORBIDDEN', `This API key is not allowed in sandbox "${sandbox.name}"`);
  }
}

/**
 * A token bucket per key: `perSecond` requests a second, bursts of as many. Requests without a
 * key (an open server) are not limited.
 */
export class RateLimiter {
  private readonly buckets = new Map<number, { tokens: number; at: number }>();

  constructor(private readonly perSecond: number) {}

  /** Takes a token for the key, or throws RATE_LIMITED saying when the next one is due. */
  take(principal: Principal, now = Date.now()): void {
    if (this.perSecond <= 0 || principal.keyId === null) return;
    const bucket = this.buckets.get(principal.keyId) ?? { tokens: this.perSecond, at: now };
    bucket.tokens = Math.min(this.perSecond, bucket.tokens + ((now - bucket.at) / 1000) * this.perSecond);
    bucket.at = now;
    this.buckets.set(principal.keyId, bucket);
    if (bucket.tokens < 1) {
      const retryAfterSeconds = Math.max(1, Math.ceil((1 - bucket.tokens) / this.perSecond));
      throw new DomainError('RATE_LIMITED', `Too many requests for this API key; retry in ${retryAfterSeconds} s`, {
        retryAfterSeconds,
      });
    }
    bucket.tokens -= 1;
  }
}
