import { GraphQLObjectType, type GraphQLResolveInfo } from 'graphql';
import { describe, expect, it } from 'vitest';
import { encodeGlobalId } from '../../src/domain/ids.js';
import { schema } from '../../src/graphql/index.js';

const nodeTypes = Object.values(schema.getTypeMap()).filter(
  (t): t is GraphQLObjectType => t instanceof GraphQLObjectType && t.getInterfaces().some((i) => i.name === 'Node'),
);

describe('node ids', () => {
  it('are resolved at once, as the global id of the type and the row id, on every node type', () => {
    expect(nodeTypes.map((t) => t.name)).toEqual(expect.arrayContaining(['Audience', 'Profile', 'SegmentDefinition']));
    for (const type of nodeTypes) {
      const resolve = type.getFields().id!.resolve!;
      const id = resolve({ id: 42 }, {}, {}, { parentType: type, fieldName: 'id' } as unknown as GraphQLResolveInfo);
      expect(id, type.name).toBe(encodeGlobalId(type.name, '42'));
    }
  });
});
