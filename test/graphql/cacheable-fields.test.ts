import { isObjectType, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { CACHEABLE_FIELDS, isCacheableDocument } from '../../src/graphql/cacheable-fields.js';
import { schema } from '../../src/graphql/index.js';

const cacheable = (text: string) => isCacheableDocument(schema, parse(text));

describe('cacheable fields', () => {
  it('names only fields the schema has', () => {
    for (const coordinate of CACHEABLE_FIELDS) {
      const [type, field] = coordinate.split('.') as [string, string];
      const named = schema.getType(type);
      expect(isObjectType(named) && named.getFields()[field] !== undefined, coordinate).toBe(true);
    }
  });

  it("takes the api bench's page, through fragments and @include too", () => {
    expect(
      cacheable(`query Page($first: Int!, $jobs: Boolean!) { audiences(first: $first) { edges { node {
        ...A segmentDefinition { id name normalizedExpression evaluationInfo { batch streaming edge }
          latestJob @include(if: $jobs) { id status createdAt finishedAt } } } } } }
        fragment A on Audience { __typename id name size lifecycleState updatedAt }`),
    ).toBe(true);
  });

  it('leaves out documents with a field that depends on more than the rows', () => {
    // `stale` reads the clock; `members` is not listed; estimates are computed in memory.
    expect(cacheable('{ audiences { edges { node { id stale } } } }')).toBe(false);
    expect(cacheable('{ audiences { edges { node { members { edges { cursor } } } } } }')).toBe(false);
    expect(cacheable('{ segmentDefinitions { edges { node { estimate { __typename } } } } }')).toBe(false);
    expect(cacheable('{ __schema { types { name } } }')).toBe(false);
    // A fragment the operation never spreads still counts.
    expect(cacheable('{ audiences { edges { cursor } } } fragment F on Audience { stale }')).toBe(false);
  });

  it('leaves out mutations, subscriptions and incremental delivery', () => {
    expect(cacheable('mutation { deleteAudience(id: "x") }')).toBe(false);
    expect(cacheable('query Q { audiences { edges { cursor } } } mutation M { deleteAudience(id: "x") }')).toBe(false);
    expect(cacheable('subscription { jobUpdated(id: "x") { id } }')).toBe(false);
    expect(cacheable('{ audiences { edges { node { ... on Audience @defer { name } } } } }')).toBe(false);
  });
});
