import { notFound } from '../domain/errors.js';
import { internalId } from '../domain/ids.js';

/** The internal id of a global id of `type`; undefined when it is malformed or of another type. */
export const decodeId = (globalId: string, type: string): number | undefined => internalId(globalId, type);

/** Like decodeId, for ids a mutation needs: anything unusable is NOT_FOUND naming the id. */
export function requireId(globalId: string, type: string): number {
  const id = internalId(globalId, type);
  if (id === undefined) throw notFound(`No ${type} with id "${globalId}" in this sandbox`, globalId);
  return id;
}
