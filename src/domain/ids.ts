/**
 * Global ids: opaque to clients, `base64("<Type>:<id>")` inside. The GraphQL layer's Relay
 * plugin uses these same functions, and the domain needs them because PQL's
 * `inSegment("<audience id>")` names audiences by the id clients see.
 */
export function encodeGlobalId(type: string, id: number | string): string {
  return Buffer.from(`${type}:${id}`, 'utf8').toString('base64');
}

export function decodeGlobalId(globalId: string): { type: string; id: string } | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(globalId)) return undefined;
  const text = Buffer.from(globalId, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon <= 0) return undefined;
  return { type: text.slice(0, colon), id: text.slice(colon + 1) };
}

/** The integer id inside a global id of `type`, or undefined. */
export function internalId(globalId: string, type: string): number | undefined {
  const decoded = decodeGlobalId(globalId);
  if (!decoded || decoded.type !== type) return undefined;
  const n = Number(decoded.id);
  return Number.isSafeInteger(n) && n > 0 && String(n) === decoded.id ? n : undefined;
}
