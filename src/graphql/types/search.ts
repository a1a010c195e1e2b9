import type { Audience } from '../../domain/audiences.js';
import type { SegmentDefinition } from '../../domain/definitions.js';
import { badInput } from '../../domain/errors.js';
import type { SchemaField } from '../../domain/profile-schema.js';
import { liveSearchResults, SEARCH_EVENT_TYPES, type SearchEvent } from '../../domain/search/live-search.js';
import { SEARCH_FIELDS } from '../../domain/search/query.js';
import {
  hitGlobalId,
  SEARCH_ENTITY_KINDS,
  SEARCH_MAX_PAGE,
  type SearchHit,
  schemaFieldOfHit,
  searchEntities,
  searchNamespaces,
  taxonomy,
} from '../../domain/search/search.js';
import { builder } from '../builder.js';
import { toConnection } from '../connection.js';
import { enumFromDomain } from '../enums.js';
import { SchemaFieldType } from './profile-schema.js';
import { AudienceRef, FolderRef, SegmentDefinitionRef } from './refs.js';

const SearchEntityKindEnum = enumFromDomain('SearchEntityKind', 'What a search hit is.', SEARCH_ENTITY_KINDS, {
  AUDIENCE: 'An audience.',
  DEFINITION: 'A segment definition.',
  FIELD: 'A field of the profile schema.',
});

const SearchFieldEnum = enumFromDomain('SearchField', 'A field of the search index.', SEARCH_FIELDS, {
  name: 'The name (a schema field: its path).',
  description: 'The description.',
  id: 'The global id.',
  external_id: 'The id in the system an external audience came from.',
  labels: 'The labels.',
  folder: 'The folder path, e.g. /Marketing/Nordics.',
  namespace: 'The namespace (schema for schema fields).',
  expression: 'The PQL expression text.',
  path: "A schema field's path.",
  type: "A schema field's type.",
});

const SearchEventTypeEnum = enumFromDomain(
  'SearchEventType',
  'What a searchResults event reports.',
  SEARCH_EVENT_TYPES,
  {
    RESULTS: 'The current hits, sent first.',
    ADDED: 'A hit that appeared.',
    CHANGED: 'A hit whose rank or content changed.',
    REMOVED: 'A hit that no longer matches (or whose entity was deleted).',
  },
);

type SearchEntity = Audience | SegmentDefinition | SchemaField;

const SearchEntityUnion = builder.unionType('SearchEntity', {
  description: 'The entity a search hit found.',
  types: [AudienceRef, SegmentDefinitionRef, SchemaFieldType],
  resolveType: (value: SearchEntity) =>
    'class' in value ? 'SchemaField' : 'expressionText' in value ? 'SegmentDefinition' : 'Audience',
});

const SearchHitType = builder.objectRef<SearchHit>('SearchHit').implement({
  description: 'One entity a search found, with why it matched.',
  fields: (t) => ({
    kind: t.field({ type: SearchEntityKindEnum, description: 'What it is.', resolve: (h) => h.kind }),
    entityId: t.id({
      nullable: true,
      description: 'The global id of the audience or definition; null for a schema field.',
      resolve: (h) => hitGlobalId(h),
    }),
    key: t.string({
      description: 'A key unique in the sandbox: the global id, or "<class>:<path>" for a schema field.',
      resolve: (h) => hitGlobalId(h) ?? h.entityKey,
    }),
    entity: t.field({
      type: SearchEntityUnion,
      nullable: true,
      description: 'The entity; null when it has been deleted since (REMOVED events).',
      resolve: async (h, _a, ctx): Promise<SearchEntity | null> => {
        if (h.kind === 'AUDIENCE') return (await ctx.loaders.audience.load(Number(h.entityKey))) ?? null;
        if (h.kind === 'DEFINITION') return (await ctx.loaders.definition.load(Number(h.entityKey))) ?? null;
        return schemaFieldOfHit(ctx.conn, ctx.sandbox.id, h.entityKey);
      },
    }),
    namespace: t.exposeString('namespace', { description: 'segql, an external namespace, or schema.' }),
    score: t.float({ description: 'The bm25 relevance: lower is better.', resolve: (h) => h.score }),
    rank: t.int({ description: 'Its 0-based position in the ranking.', resolve: (h) => h.rank }),
    snippet: t.exposeString('snippet', {
      description: 'A fragment of the best-matching field, matched words in <mark>…</mark> (plain text, not escaped).',
    }),
    matchedFields: t.field({
      type: [SearchFieldEnum],
      description: 'The fields the query matched in.',
      resolve: (h) => h.matchedFields,
    }),
  }),
});

const SearchNamespaceCountType = builder
  .objectRef<{ namespace: string; count: number }>('SearchNamespaceCount')
  .implement({
    description: 'How many entities of one namespace a query finds.',
    fields: (t) => ({
      namespace: t.exposeString('namespace', { description: 'segql, an external namespace, or schema.' }),
      count: t.exposeInt('count', { description: 'The number of hits.' }),
    }),
  });

const SearchEventType = builder.objectRef<SearchEvent>('SearchEvent').implement({
  description: 'A change of a live search: first the current hits, then each hit that appears, changes or goes.',
  fields: (t) => ({
    type: t.field({ type: SearchEventTypeEnum, description: 'What happened.', resolve: (e) => e.type }),
    hits: t.field({
      type: [SearchHitType],
      description: 'RESULTS: the current hits, best first; empty otherwise.',
      resolve: (e) => e.hits,
    }),
    hit: t.field({
      type: SearchHitType,
      nullable: true,
      description: 'ADDED, CHANGED, REMOVED: the hit (as last seen, for REMOVED); null for RESULTS.',
      resolve: (e) => e.hit,
    }),
    totalCount: t.int({ description: 'How many entities the query finds now.', resolve: (e) => e.totalCount }),
  }),
});

const queryArg =
  'A search query: words, AND/OR/NOT, field:word, "phrases", prefix*, te?t, word~1 (docs/api.md "Search").';

builder.queryFields((t) => ({
  searchNamespaces: t.field({
    type: [SearchNamespaceCountType],
    description: 'How many entities a query finds per namespace: segql, each external namespace, then schema.',
    args: { query: t.arg.string({ required: true, description: queryArg }) },
    resolve: (_r, args, ctx) => searchNamespaces(ctx.conn, ctx.sandbox.id, args.query),
  }),
  searchEntities: t.connection(
    {
      type: SearchHitType,
      description: 'Entities of one namespace a query finds, best first (name matches, then bm25).',
      args: {
        namespace: t.arg.string({ required: true, description: 'segql, an external namespace, or schema.' }),
        query: t.arg.string({ required: true, description: queryArg }),
      },
      complexity: (args) => ({ field: 2, multiplier: Math.max(1, Math.min(SEARCH_MAX_PAGE, args.first ?? 20)) }),
      resolve: async (_r, args, ctx) => {
        if (args.last != null || args.before != null)
          throw badInput('Search pages only forward: use first and after', 'last');
        const page = await searchEntities(ctx.conn, ctx.sandbox.id, args.namespace, args.query, args);
        return toConnection({ ...page, items: page.hits });
      },
    },
    { name: 'SearchHitConnection', description: 'A page of search hits.' },
    { name: 'SearchHitEdge', description: 'A search hit in a page, with its cursor.' },
  ),
  taxonomy: t.field({
    type: [FolderRef],
    description: 'The folders an audience or definition is filed under, from the root down (empty at the root).',
    args: {
      entityId: t.arg.id({ required: true, description: 'The global id of an audience or segment definition.' }),
    },
    resolve: (_r, args, ctx) => taxonomy(ctx.conn, ctx.sandbox.id, String(args.entityId)),
  }),
}));

builder.subscriptionField('searchResults', (t) =>
  t.field({
    type: SearchEventType,
    description:
      'A live search in this sandbox: the current hits (one RESULTS event), then ADDED, CHANGED and REMOVED as data changes.',
    args: {
      query: t.arg.string({ required: true, description: queryArg }),
      namespace: t.arg.string({ description: 'Only this namespace (default: all).' }),
      first: t.arg.int({ description: `How many of the best hits to watch (default 20, at most ${SEARCH_MAX_PAGE}).` }),
    },
    subscribe: (_r, args, ctx) =>
      liveSearchResults({
        conn: ctx.conn,
        bus: ctx.app.bus,
        watcher: ctx.app.search,
        sandboxId: ctx.sandbox.id,
        namespace: args.namespace ?? null,
        query: args.query,
        first: args.first ?? 20,
        signal: ctx.signal,
      }),
    // The subscription's loaders live as long as it does: each event must show the entities as they are now.
    resolve: (event, _a, ctx) => {
      ctx.loaders.audience.clearAll();
      ctx.loaders.definition.clearAll();
      return event;
    },
  }),
);
