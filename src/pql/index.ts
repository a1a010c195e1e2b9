/**
 * The one door to the language: the domain and the server import PQL from here only (a test
 * checks it), so the folders behind it (language/, check/, runtime/, sql/, js/) can be reshaped
 * without touching their callers.
 */
export { buildCatalog, DEFAULT_SCHEMA_FIELDS, parseFieldType, typeToString } from './check/catalog.js';
export { check, checkDefinition } from './check/checker.js';
export { STREAMING_WINDOW_MS } from './check/eligibility.js';
export { type EventReads, eventReads } from './check/reads.js';
export { requiredAudiences } from './check/required-audiences.js';
export {
  type CheckedExpression,
  type CheckOptions,
  CURRENT_MEMBER_STATUSES,
  type Eligibility,
  type EventRecord,
  type FieldCatalog,
  type ObjectType,
  type PqlType,
  type ProfileDocument,
  type ResolvedAudience,
} from './check/types.js';
export { BUILT_IN_SCHEMA_FIELDS, builtInConflict } from './check/xdm-fields.js';
export { eventBefore, eventRecord, eventsInOrder } from './js/context.js';
export { evaluate, evaluateValue } from './js/evaluate.js';
export { EXPLAIN_ITEM_LIMIT, type ExplainNode, type ExplainOptions, type Explanation, explain } from './js/explain.js';
export type * from './language/ast.js';
export { audienceReferences } from './language/audience-references.js';
export { PQL_ERROR_CODES, PqlError, type PqlErrorCode } from './language/errors.js';
export { fromJson, type PqlJson, toJson } from './language/json.js';
export { parse } from './language/parser.js';
export { print } from './language/printer.js';
export type { DialectName } from './sql/dialect.js';
export { registerPqlFunctions } from './sql/sql-functions.js';
export { compilePredicate, compileToSql, type IdCondition, type SqlStatement } from './sql/to-sql.js';
