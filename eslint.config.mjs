// Lints the committed SDL (schema.graphql) the way a client team's graphql-eslint would:
// every type, field, argument and enum value described; Relay connection shapes; naming.
import graphql from '@graphql-eslint/eslint-plugin';

const recommended = graphql.configs['flat/schema-recommended'].rules;

export default [
  {
    files: ['schema.graphql'],
    languageOptions: {
      parser: graphql.parser,
      parserOptions: { graphQLConfig: { schema: './schema.graphql' } },
    },
    plugins: { '@graphql-eslint': graphql },
    rules: {
      '@graphql-eslint/require-description': [
        'error',
        {
          types: true,
          rootField: true,
          FieldDefinition: true,
          InputValueDefinition: true,
          EnumValueDefinition: true,
          DirectiveDefinition: true,
        },
      ],
      '@graphql-eslint/naming-convention': recommended['@graphql-eslint/naming-convention'],
      '@graphql-eslint/relay-arguments': 'error',
      '@graphql-eslint/relay-connection-types': 'error',
      // Members and membership transitions are rows of a relation, not refetchable entities: their
      // edges point at objects without a global id. Plain lists (labels, folders) are fine where a
      // list is small and has no paging.
      '@graphql-eslint/relay-edge-types': ['error', { shouldImplementNode: false, listTypeCanWrapOnlyEdgeType: false }],
      '@graphql-eslint/relay-page-info': 'error',
    },
  },
];
