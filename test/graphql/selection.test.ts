import { type FieldNode, type GraphQLResolveInfo, type OperationDefinitionNode, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { selectsOnlyId } from '../../src/graphql/selection.js';

/** The resolve info of the first root field of `query`, as far as selectsOnlyId reads it. */
function infoOf(query: string): GraphQLResolveInfo {
  const operation = parse(query).definitions[0] as OperationDefinitionNode;
  const root = operation.selectionSet.selections[0] as FieldNode;
  const field = root.selectionSet!.selections[0] as FieldNode;
  return { fieldNodes: [field] } as unknown as GraphQLResolveInfo;
}

describe('selectsOnlyId', () => {
  it('is true when the items are asked for id and __typename only, aliased or not', () => {
    expect(selectsOnlyId(infoOf('{ evaluateProfile { audiences { id } } }'))).toBe(true);
    expect(selectsOnlyId(infoOf('{ evaluateProfile { audiences { __typename key: id } } }'))).toBe(true);
  });

  it('is false for any other field, a fragment or a directive', () => {
    expect(selectsOnlyId(infoOf('{ evaluateProfile { audiences { id name } } }'))).toBe(false);
    expect(selectsOnlyId(infoOf('{ evaluateProfile { audiences { name: id size } } }'))).toBe(false);
    expect(selectsOnlyId(infoOf('{ evaluateProfile { audiences { ... on Audience { id } } } }'))).toBe(false);
    expect(selectsOnlyId(infoOf('{ evaluateProfile { audiences { ...A } } } fragment A on Audience { id }'))).toBe(
      false,
    );
    expect(selectsOnlyId(infoOf('query($x: Boolean!) { evaluateProfile { audiences { id @include(if: $x) } } }'))).toBe(
      false,
    );
  });

  it('is false when one of the merged field nodes asks for more', () => {
    const a = infoOf('{ evaluateProfile { audiences { id } } }').fieldNodes[0]!;
    const b = infoOf('{ evaluateProfile { audiences { name } } }').fieldNodes[0]!;
    expect(selectsOnlyId({ fieldNodes: [a, b] } as unknown as GraphQLResolveInfo)).toBe(false);
  });
});
