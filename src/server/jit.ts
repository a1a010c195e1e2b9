/**
 * Queries and mutations run as compiled JavaScript (graphql-jit): resolving fields through the reference
 * executor was most of the CPU of a page of audiences (docs/performance.md, `api`).
 *
 * A client must never get a different answer for being fast, and graphql-jit's answers differ
 * from graphql-js's only when something went wrong (errors without `locations`, other wording of
 * variable coercion errors). So: a query whose compiled run reported errors runs again on the
 * reference executor, which gives the answer (a query only reads, so running it twice is safe).
 * A mutation runs once: compiled, its errors located as the reference executor locates them; only
 * when its variables are refused (nothing ran) does the reference executor answer instead. The
 * hot one is `ingestEvents`: graphql-js took ~3.3 µs per event to coerce its variables, graphql-jit
 * 0.23. A subscription's events run compiled too (`executeEvent`, for shared-subscription-results.ts:
 * graphql-js resolved each of a commit's membership changes field by field, a fifth of the main
 * thread's allocation under `stream`), again on the reference executor when they report errors.
 * @defer/@stream, variables inside literals and documents graphql-jit cannot compile never leave
 * the reference executor. A mutation of one root field compiles as a query (`mutationAsQuerySchema`).
 */
import {
  BREAK,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLError,
  GraphQLSchema,
  isNamedType,
  Kind,
  locatedError,
  type OperationDefinitionNode,
  OperationTypeNode,
  type SelectionSetNode,
  visit,
} from 'graphql';
import { type CompiledQuery, compileQuery, isCompiledQuery } from 'graphql-jit';
import type { Plugin } from 'graphql-yoga';
import { referenceEventExecutor } from './shared-subscription-results.js';

/** A compiled operation, and for a mutation (which never runs twice) its definition. */
interface Compiled {
  query: CompiledQuery;
  mutation: OperationDefinitionNode | undefined;
  /** A subscription's: run per event (`executeEvent`), never through `onExecute`. */
  subscription: boolean;
}

/**
 * The field nodes the response path names, through fragments. Every fragment's, whatever its
 * type condition (graphql-js merges only those of the runtime type): a mutation's payload with
 * an error inside a fragment on one of several types would list the others' nodes too.
 */
function fieldNodesAt(
  document: DocumentNode,
  operation: OperationDefinitionNode,
  path: readonly (string | number)[],
): FieldNode[] {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  let sets: SelectionSetNode[] = [operation.selectionSet];
  let nodes: FieldNode[] = [];
  for (const key of path) {
    if (typeof key === 'number') continue;
    const found: FieldNode[] = [];
    const collect = (set: SelectionSetNode) => {
      for (const selection of set.selections) {
        if (selection.kind === Kind.FIELD) {
          if ((selection.alias ?? selection.name).value === key) found.push(selection);
        } else if (selection.kind === Kind.INLINE_FRAGMENT) collect(selection.selectionSet);
        else {
          const fragment = fragments.get(selection.name.value);
          if (fragment) collect(fragment.selectionSet);
        }
      }
    };
    for (const set of sets) collect(set);
    nodes = found;
    sets = found.flatMap((n) => (n.selectionSet ? [n.selectionSet] : []));
  }
  return nodes;
}

/**
 * A compiled mutation's answer as the reference executor gives it: each error located at the
 * nodes of its field (graphql-jit passes a resolver's own GraphQLError on without them), and the
 * errors before the data.
 */
function asReferenceAnswer(result: ExecutionResult, document: DocumentNode, operation: OperationDefinitionNode) {
  const errors = (result.errors ?? []).map((error) => {
    if (!error.path) return error;
    const original = (error as GraphQLError).originalError ?? error;
    return locatedError(original, fieldNodesAt(document, operation, error.path), error.path);
  });
  return { errors, data: result.data };
}

/** How operations ran: compiled, on the reference executor, or compiled and then re-run there. */
export interface CompiledExecutionStats {
  compiled: number;
  reference: number;
  rerun: number;
}

/**
 * What graphql-jit does not run as graphql-js does: @defer/@stream (incremental delivery), and a
 * variable inside an object or list literal (graphql-jit hands a custom scalar such as JSON the
 * literal without the variable's value: `{ tier: $t }` arrived as `{}`).
 */
function needsReferenceExecutor(document: DocumentNode): boolean {
  let found = false;
  let literalDepth = 0;
  const enterLiteral = () => {
    literalDepth++;
  };
  const leaveLiteral = () => {
    literalDepth--;
  };
  visit(document, {
    Directive(node) {
      if (node.name.value === 'defer' || node.name.value === 'stream') {
        found = true;
        return BREAK;
      }
      return undefined;
    },
    ObjectValue: { enter: enterLiteral, leave: leaveLiteral },
    ListValue: { enter: enterLiteral, leave: leaveLiteral },
    Variable() {
      if (literalDepth > 0) {
        found = true;
        return BREAK;
      }
      return undefined;
    },
  });
  return found;
}

/**
 * The schema with its Mutation type as the query root, for compiling a mutation of one root
 * field as a query. graphql-jit compiles a mutation for serial execution: per run it hangs two
 * closures on its execution context and keeps a branch that makes that context a closure
 * variable, and under `stream` V8 came to allocate those runs' objects in the old generation,
 * where dead ones hold each request (its context, its coerced variables) through every minor GC
 * until the next full one: the main thread's scavenges took 7 ms at the median, copying and
 * promoting ~2.5 MB each (bench/RESULTS.md, session 27). One root field runs alone whichever
 * way, and compiled as a query the runs die young. Built once per schema; it shares every type
 * (and so every resolver) with the schema it comes from. A resolver of such a mutation sees its
 * parent type as Mutation, but `info.operation` as a query and `info.schema` as this one: nothing
 * of SegQL's reads the operation's kind there (Pothos' complexity takes its root from `info.schema`).
 */
const mutationRoots = new WeakMap<GraphQLSchema, GraphQLSchema | null>();
function mutationAsQuerySchema(schema: GraphQLSchema): GraphQLSchema | null {
  let derived = mutationRoots.get(schema);
  if (derived === undefined) {
    const mutation = schema.getMutationType();
    derived = mutation
      ? new GraphQLSchema({
          query: mutation,
          types: Object.values(schema.getTypeMap()).filter((t) => isNamedType(t) && !t.name.startsWith('__')),
          directives: schema.getDirectives(),
        })
      : null;
    mutationRoots.set(schema, derived);
  }
  return derived;
}

/** A mutation whose selection is one field (no fragment, no second field): it has nothing to run in order. */
function singleRootField(operation: OperationDefinitionNode): boolean {
  const [only, ...rest] = operation.selectionSet.selections;
  return only?.kind === Kind.FIELD && rest.length === 0;
}

/**
 * A re-run of a query that ran out of its time budget would spend the budget again only to
 * report the same timeout, so that one answer is kept as compiled.
 */
function timedOut(result: ExecutionResult): boolean {
  return (
    result.errors?.some((e) => (e.originalError as { code?: string } | undefined)?.code === 'QUERY_TIMEOUT') ?? false
  );
}

export function compiledExecution(onCompileError: (errors: readonly unknown[]) => void): Plugin & {
  stats: CompiledExecutionStats;
  executeEvent: (args: ExecutionArgs, event: unknown) => ExecutionResult | Promise<ExecutionResult>;
} {
  const stats: CompiledExecutionStats = { compiled: 0, reference: 0, rerun: 0 };
  // Keyed on the parsed document, which yoga's parser cache hands out once per query text;
  // null marks a document that stays on the reference executor.
  const byDocument = new WeakMap<DocumentNode, Map<string, Compiled | null>>();

  function compiled(args: ExecutionArgs): Compiled | null {
    let perOperation = byDocument.get(args.document);
    if (!perOperation) {
      perOperation = new Map();
      byDocument.set(args.document, perOperation);
    }
    const key = args.operationName ?? '';
    let entry = perOperation.get(key);
    if (entry === undefined) {
      entry = null;
      const operation = args.document.definitions.find(
        (d) => d.kind === Kind.OPERATION_DEFINITION && (!args.operationName || d.name?.value === args.operationName),
      );
      if (operation?.kind === Kind.OPERATION_DEFINITION && !needsReferenceExecutor(args.document)) {
        const asQuery =
          operation.operation === 'mutation' && singleRootField(operation) ? mutationAsQuerySchema(args.schema) : null;
        const result = asQuery
          ? compileQuery(
              asQuery,
              {
                ...args.document,
                definitions: args.document.definitions.map((d) =>
                  d === operation ? { ...operation, operation: OperationTypeNode.QUERY } : d,
                ),
              },
              args.operationName ?? undefined,
            )
          : compileQuery(args.schema, args.document, args.operationName ?? undefined);
        if (isCompiledQuery(result))
          entry = {
            query: result,
            mutation: operation.operation === 'mutation' ? operation : undefined,
            subscription: operation.operation === 'subscription',
          };
        else onCompileError(result.errors ?? []);
      }
      perOperation.set(key, entry);
    }
    return entry;
  }

  return {
    stats,
    /**
     * A subscription's document run for one event (its root value), as graphql-js's `subscribe`
     * runs it: compiled, or again on the reference executor when the compiled run reported errors
     * (an event's execution only reads, as a query's does).
     */
    executeEvent(args, event) {
      const reference = () => referenceEventExecutor(args, event);
      const entry = compiled(args);
      if (!entry?.subscription) {
        stats.reference++;
        return reference();
      }
      stats.compiled++;
      const settle = (result: ExecutionResult) => {
        if (!result.errors?.length) return result;
        stats.rerun++;
        return reference();
      };
      const result = entry.query.query(event, args.contextValue, args.variableValues) as
        | ExecutionResult
        | Promise<ExecutionResult>;
      return result instanceof Promise ? result.then(settle) : settle(result);
    },
    onExecute({ args, executeFn, setExecuteFn }) {
      const entry = compiled(args);
      if (!entry || entry.subscription) {
        stats.reference++;
        return;
      }
      stats.compiled++;
      const { query, mutation } = entry;
      setExecuteFn(async (a: ExecutionArgs) => {
        const result = (await query.query(a.rootValue, a.contextValue, a.variableValues)) as ExecutionResult;
        if (!result.errors?.length) return result;
        // A mutation whose resolvers ran (there is data, if only null) has written: its answer,
        // errors and all, is the compiled run's. Refused variables ran nothing and are worded
        // by the reference executor, as a query's errors are.
        if (mutation && 'data' in result) return asReferenceAnswer(result, a.document, mutation);
        if (timedOut(result)) return result;
        stats.rerun++;
        return executeFn(a);
      });
    },
  };
}
