import { type GraphQLResolveInfo, Kind } from 'graphql';

/**
 * Whether the field's selection asks its items for nothing but `id` (and `__typename`): then a
 * list of ids already known needs no rows read. Anything else — another field, a fragment, a
 * directive — counts as asking for more, so the answer is never built from too little.
 */
export function selectsOnlyId(info: GraphQLResolveInfo): boolean {
  for (const node of info.fieldNodes) {
    for (const selection of node.selectionSet?.selections ?? []) {
      if (selection.kind !== Kind.FIELD || selection.directives?.length) return false;
      const name = selection.name.value;
      if (name !== 'id' && name !== '__typename') return false;
    }
  }
  return true;
}
