import { parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { schema } from '../../src/graphql/index.js';
import { operationKey } from '../../src/server/shared-subscription-results.js';

const document = parse('subscription { audienceMembershipChanged { to audience { name } } }');
const principal = (keyId: number | null, scopes: string[], sandboxIds: number[] | null = null) => ({
  keyId,
  scopes: new Set(scopes),
  sandboxIds: sandboxIds && new Set(sandboxIds),
});
const args = (ctx: object, variableValues?: Record<string, unknown>, doc = document) =>
  ({ schema, document: doc, contextValue: ctx, variableValues }) as never;

describe('operationKey', () => {
  const reader = { principal: principal(1, ['read', 'stream']), sandbox: { id: 1 } };

  it('is the same for two subscribers with the same key, scopes, sandbox and variables', () => {
    const again = { principal: principal(1, ['stream', 'read']), sandbox: { id: 1 } };
    expect(operationKey(args(reader, { a: 1 }))).toBe(operationKey(args(again, { a: 1 })));
  });

  it('differs with the scopes, the key, the sandboxes it may see, the sandbox or the variables', () => {
    const key = operationKey(args(reader));
    expect(operationKey(args({ ...reader, principal: principal(1, ['read']) }))).not.toBe(key);
    expect(operationKey(args({ ...reader, principal: principal(2, ['read', 'stream']) }))).not.toBe(key);
    expect(operationKey(args({ ...reader, principal: principal(1, ['read', 'stream'], [1]) }))).not.toBe(key);
    expect(operationKey(args({ ...reader, sandbox: { id: 2 } }))).not.toBe(key);
    expect(operationKey(args(reader, { a: 1 }))).not.toBe(key);
    expect(operationKey(args(reader, undefined, parse('subscription { audienceMembershipChanged { to } }')))).not.toBe(
      key,
    );
  });

  it('is undefined without a principal, or for a document that delivers incrementally', () => {
    expect(operationKey(args({ sandbox: { id: 1 } }))).toBeUndefined();
    const deferred = parse('subscription { audienceMembershipChanged { to ... @defer { from } } }');
    expect(operationKey(args(reader, undefined, deferred))).toBeUndefined();
  });
});
