import {
  type FragmentDefinitionNode,
  GraphQLError,
  Kind,
  Lexer,
  type SelectionSetNode,
  Source,
  type Token,
  TokenKind,
  type ValidationContext,
  type ValidationRule,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';

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

/** Bracket nesting (selection sets, lists, objects, arguments) a document may reach. */
const MAX_DOCUMENT_NESTING = 200;
/** Tokens a document may hold: far above any hand-written operation, far below a stalled parse. */
const MAX_DOCUMENT_TOKENS = 100_000;

const OPENING = new Set<string>([TokenKind.BRACE_L, TokenKind.BRACKET_L, TokenKind.PAREN_L]);
const CLOSING = new Set<string>([TokenKind.BRACE_R, TokenKind.BRACKET_R, TokenKind.PAREN_R]);

/**
 * Scans a document with graphql-js's lexer (a loop, no recursion) before the recursive parser
 * sees it, so a literal nested thousands deep is refused instead of overflowing the stack.
 * Lexical errors are left to the parser, whose message is the better one.
 */
function documentShapeError(source: string): GraphQLError | undefined {
  const lexer = new Lexer(new Source(source));
  let depth = 0;
  let tokens = 0;
  try {
    for (let token = lexer.advance(); token.kind !== TokenKind.EOF; token = lexer.advance()) {
      tokens++;
      if (tokens > MAX_DOCUMENT_TOKENS) {
        return badDocument(`The document has more than ${MAX_DOCUMENT_TOKENS} tokens`, MAX_DOCUMENT_TOKENS, token);
      }
      if (OPENING.has(token.kind)) {
        depth++;
        if (depth > MAX_DOCUMENT_NESTING) {
          return badDocument(
            `The document nests brackets more than ${MAX_DOCUMENT_NESTING} deep`,
            MAX_DOCUMENT_NESTING,
            token,
          );
        }
      } else if (CLOSING.has(token.kind)) {
        depth--;
      }
    }
  } catch {
    return undefined;
  }
  return undefined;
}

function badDocument(message: string, limit: number, token: Token): GraphQLError {
  return new GraphQLError(`${message} (line ${token.line}, column ${token.column})`, {
    extensions: { code: 'BAD_USER_INPUT', limit, http: { status: 400 } },
  });
}

/** Puts `documentShapeError` in front of every parse: HTTP, SSE and graphql-ws. */
export function documentLimitsPlugin(): Plugin {
  return {
    onParse({ parseFn, setParseFn }) {
      setParseFn((source, options) => {
        const text = typeof source === 'string' ? source : source.body;
        const error = documentShapeError(text);
        if (error) throw error;
        return parseFn(source, options);
      });
    },
  };
}
