/**
 * Queries run as compiled JavaScript (graphql-jit): resolving fields through the reference
 * executor was most of the CPU of a page of audiences (docs/performance.md, `api`).
 *
 * A client must never get a different answer for being fast, and graphql-jit's answers differ
 * from graphql-js's only when something went wrong (errors without `locations`, other wording of
 * variable coercion errors). So: a query whose compiled run reported errors runs again on the
 * reference executor, which gives the answer (a query only reads, so running it twice is safe);
 * mutations, subscriptions, @defer/@stream, variables inside literals and documents graphql-jit
 * cannot compile never leave the reference executor.
 */
import { BREAK, type DocumentNode, type ExecutionArgs, type ExecutionResult, Kind, visit } from 'graphql';
import { type CompiledQuery, compileQuery, isCompiledQuery } from 'graphql-jit';
import type { Plugin } from 'graphql-yoga';

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
 * A re-run of a query that ran out of its time budget would spend the budget again only to
 * report the same timeout, so that one answer is kept as compiled.
 */
function timedOut(result: ExecutionResult): boolean {
  return (
    result.errors?.some((e) => (e.originalError as { code?: string } | undefined)?.code === 'QUERY_TIMEOUT') ?? false
  );
}

export function compiledExecution(
  onCompileError: (errors: readonly unknown[]) => void,
): Plugin & { stats: CompiledExecutionStats } {
  const stats: CompiledExecutionStats = { compiled: 0, reference: 0, rerun: 0 };
  // Keyed on the parsed document, which yoga's parser cache hands out once per query text;
  // null marks a document that stays on the reference executor.
  const byDocument = new WeakMap<DocumentNode, Map<string, CompiledQuery | null>>();

  function compiled(args: ExecutionArgs): CompiledQuery | null {
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
      if (
        operation?.kind === Kind.OPERATION_DEFINITION &&
        operation.operation === 'query' &&
        !needsReferenceExecutor(args.document)
      ) {
        const result = compileQuery(args.schema, args.document, args.operationName ?? undefined);
        if (isCompiledQuery(result)) entry = result;
        else onCompileError(result.errors ?? []);
      }
      perOperation.set(key, entry);
    }
    return entry;
  }

  return {
    stats,
    onExecute({ args, executeFn, setExecuteFn }) {
      const query = compiled(args);
      if (!query) {
        stats.reference++;
        return;
      }
      stats.compiled++;
      setExecuteFn(async (a: ExecutionArgs) => {
        const result = (await query.query(a.rootValue, a.contextValue, a.variableValues)) as ExecutionResult;
        if (!result.errors?.length || timedOut(result)) return result;
        stats.rerun++;
        return executeFn(a);
      });
    },
  };
}
