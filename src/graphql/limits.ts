import {
  type FragmentDefinitionNode,
  GraphQLError,
  Kind,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
} from 'graphql';

const tooComplex = (message: string, limit: number, actual: number) =>
  new GraphQLError(message, { extensions: { code: 'QUERY_TOO_COMPLEX', limit, actual } });

function selectionDepth(
  set: SelectionSetNode | undefined,
  fragments: Map<string, FragmentDefinitionNode>,
  seen: Set<string>,
  cap: number,
): number {
  if (!set) return 0;
  let max = 0;
  for (const sel of set.selections) {
    let d = 0;
    if (sel.kind === Kind.FIELD) {
      if (sel.name.value.startsWith('__')) continue;
      d = 1 + selectionDepth(sel.selectionSet, fragments, seen, cap);
    } else if (sel.kind === Kind.INLINE_FRAGMENT) {
      d = selectionDepth(sel.selectionSet, fragments, seen, cap);
    } else {
      const name = sel.name.value;
      if (seen.has(name)) continue;
      seen.add(name);
      d = selectionDepth(fragments.get(name)?.selectionSet, fragments, seen, cap);
      seen.delete(name);
    }
    max = Math.max(max, d);
    if (max > cap) return max;
  }
  return max;
}

/** Rejects operations nested deeper than `limit` fields (introspection excluded). */
export function maxDepthRule(limit: number): ValidationRule {
  return (context: ValidationContext) => {
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const def of context.getDocument().definitions)
      if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def);
    return {
      OperationDefinition(node) {
        const depth = selectionDepth(node.selectionSet, fragments, new Set(), limit + 100);
        if (depth > limit)
          context.reportError(tooComplex(`Query depth ${depth} exceeds the limit of ${limit}`, limit, depth));
      },
    };
  };
}

/** Rejects operations with more than `limit` aliased fields. */
export function maxAliasesRule(limit: number): ValidationRule {
  return (context: ValidationContext) => {
    let count = 0;
    return {
      Field(node) {
        if (node.alias) count++;
      },
      Document: {
        leave() {
          if (count > limit)
            context.reportError(tooComplex(`The operation uses ${count} aliases; the limit is ${limit}`, limit, count));
        },
      },
    };
  };
}
