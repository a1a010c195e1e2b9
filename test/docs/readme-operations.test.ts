/**
 * The README's GraphQL operations are what a reader pastes into an app: each must be valid
 * against the schema, and each must select `id` on every object that has a global id, or a
 * normalised client cache (Apollo, Relay, urql Graphcache) cannot update what it already holds.
 */
import { readFileSync } from 'node:fs';
import {
  type FragmentDefinitionNode,
  type GraphQLCompositeType,
  getNamedType,
  isInterfaceType,
  isNonNullType,
  isObjectType,
  Kind,
  parse,
  type SelectionSetNode,
  TypeInfo,
  validate,
  visit,
  visitWithTypeInfo,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import { graphqlBlocks, README } from '../../scripts/readme-operations.js';
import { schema } from '../../src/graphql/index.js';

/** Whether a type has an `id: ID!` that a cache keys it by (Identity's deprecated String id is no global key). */
function hasGlobalId(type: GraphQLCompositeType): boolean {
  if (!isObjectType(type) && !isInterfaceType(type)) return false;
  const id = type.getFields().id;
  return !!id && !id.deprecationReason && isNonNullType(id.type) && getNamedType(id.type).name === 'ID';
}

/** Whether `id` is selected in the set itself or in a fragment spread into it. */
function selectsId(set: SelectionSetNode, fragments: Map<string, FragmentDefinitionNode>): boolean {
  return set.selections.some((s) => {
    if (s.kind === Kind.FIELD) return s.name.value === 'id' && s.alias === undefined;
    if (s.kind === Kind.INLINE_FRAGMENT) return selectsId(s.selectionSet, fragments);
    const fragment = fragments.get(s.name.value);
    return fragment ? selectsId(fragment.selectionSet, fragments) : false;
  });
}

/** Paths (`Operation.field.field`) whose object has a global id the selection leaves out. */
function missingIds(source: string): string[] {
  const document = parse(source);
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const def of document.definitions) if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def);
  const typeInfo = new TypeInfo(schema);
  const missing: string[] = [];
  const path: string[] = [];
  visit(
    document,
    visitWithTypeInfo(typeInfo, {
      OperationDefinition: {
        enter: (node) => void path.push(node.name?.value ?? node.operation),
        leave: () => void path.pop(),
      },
      Field: {
        enter(node) {
          path.push(node.alias?.value ?? node.name.value);
          const type = typeInfo.getType();
          if (!node.selectionSet || !type) return;
          const named = getNamedType(type) as GraphQLCompositeType;
          if (hasGlobalId(named) && !selectsId(node.selectionSet, fragments)) missing.push(path.join('.'));
        },
        leave: () => void path.pop(),
      },
    } as Parameters<typeof visitWithTypeInfo>[1]),
  );
  return missing;
}

describe("README's operations", () => {
  const blocks = graphqlBlocks(readFileSync(README, 'utf8'));

  it('are there to check', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(8);
  });

  it.each(blocks.map((b, i) => [i + 1, b] as const))('block %i is valid against the schema', (_n, block) => {
    expect(validate(schema, parse(block)).map((e) => e.message)).toEqual([]);
  });

  it.each(blocks.map((b, i) => [i + 1, b] as const))(
    'block %i selects id on every object that has one',
    (_n, block) => {
      expect(missingIds(block)).toEqual([]);
    },
  );

  it('catches an object selected without its id', () => {
    const query = 'query Q { audiences(first: 1) { edges { node { name folder { path } } } } }';
    expect(missingIds(query)).toEqual(['Q.audiences.edges.node', 'Q.audiences.edges.node.folder']);
  });
});
