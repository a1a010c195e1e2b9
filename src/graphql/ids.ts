import { decodeGlobalID } from '@pothos/plugin-relay';
import { notFound } from '../domain/errors.js';

/** The internal id of a global id of `type`; undefined when it is malformed or of another type. */
export function decodeId(globalId: string, type: string): number | undefined {
  try {
    const { typename, id } = decodeGlobalID(globalId);
    const n = Number(id);
    return typename === type && Number.isSafeInteger(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Like decodeId, for ids a mutation needs: anything unusable is NOT_FOUND naming the id. */
export function requireId(globalId: string, type: string): number {
  const id = decodeId(globalId, type);
  if (id === undefined) throw notFound(`No ${type} with id "${globalId}" in this sandbox`, globalId);
  return id;
}
