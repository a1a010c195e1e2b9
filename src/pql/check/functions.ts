/**
 * The signatures of every PQL function and method (docs/pql.md §5), so the checker is table-driven:
 * adding a method here and to both engines is all a new one needs.
 *
 * Type specs name either a concrete type or one relative to the receiver:
 * - `elem`: the element type of the receiver array or map (`T` of `array<T>` / `map<T>`),
 * - `array<elem>`: an array of that element type,
 * - `ordered`: a type with an order (`number`, `string`, `datetime`),
 * - `T`: the common type of the arguments marked `T` (for `if`).
 */
export type TypeSpec =
  | 'any'
  | 'string'
  | 'number'
  | 'boolean'
  | 'datetime'
  | 'ordered'
  | 'elem'
  | 'array<elem>'
  | 'array<string>'
  | 'T';

/** What a method is called on. `array` and `map` take any element type (bound to `elem`). */
export type ReceiverSpec = 'any' | 'string' | 'datetime' | 'array' | 'map';

export interface ParamSpec {
  name: string;
  type: TypeSpec;
  optional?: boolean;
  /**
   * Evaluated once per item of the receiver array with that item as the current scope (a path
   * relative to each item, or a condition on it). The items must be objects. When an optional
   * per-item argument is left out, the items themselves are the values and must have `type`.
   */
  perItem?: boolean;
  /** Must be written as a literal: a string, an RE2 regex, or a non-negative integer. */
  literal?: 'string' | 'regex' | 'count';
}

export interface MethodSignature {
  name: string;
  receiver: ReceiverSpec;
  params: ParamSpec[];
  result: TypeSpec;
}

export interface FunctionSignature {
  name: string;
  /** Alternative parameter lists (`date(y, m, d)` / `date("YYYY-MM-DD")`); the first whose arity fits applies. */
  overloads: ParamSpec[][];
  result: TypeSpec;
  /** Arguments are validated as date literals (`date`) or ISO date-time literals (`datetime`). */
  dateLiteral?: 'date' | 'datetime';
  /** The result depends on the evaluation instant (`now`), so it can change with time alone. */
  readsNow?: true;
}

const text: ParamSpec = { name: 'text', type: 'string' };
const caseSensitive: ParamSpec = { name: 'caseSensitive', type: 'boolean', optional: true };
const perItemNumber: ParamSpec = { name: 'path', type: 'number', optional: true, perItem: true };
const condition: ParamSpec = { name: 'condition', type: 'boolean', perItem: true };
const other: ParamSpec = { name: 'other', type: 'array<elem>' };

const stringPredicate = (name: string): MethodSignature => ({
  name,
  receiver: 'string',
  params: [text, caseSensitive],
  result: 'boolean',
});

const METHOD_LIST: MethodSignature[] = [
  // Profile and object
  { name: 'isNull', receiver: 'any', params: [], result: 'boolean' },
  { name: 'isNotNull', receiver: 'any', params: [], result: 'boolean' },
  // Strings
  ...[
    'startsWith',
    'endsWith',
    'contains',
    'equals',
    'notEqualTo',
    'doesNotStartWith',
    'doesNotEndWith',
    'doesNotContain',
  ].map(stringPredicate),
  {
    name: 'matches',
    receiver: 'string',
    params: [{ name: 'regex', type: 'string', literal: 'regex' }],
    result: 'boolean',
  },
  {
    name: 'regexGroup',
    receiver: 'string',
    params: [
      { name: 'regex', type: 'string', literal: 'regex' },
      { name: 'group', type: 'number', literal: 'count' },
    ],
    result: 'string',
  },
  { name: 'length', receiver: 'string', params: [], result: 'number' },
  { name: 'lower', receiver: 'string', params: [], result: 'string' },
  { name: 'upper', receiver: 'string', params: [], result: 'string' },
  // Arrays
  { name: 'includes', receiver: 'array', params: [{ name: 'value', type: 'elem' }], result: 'boolean' },
  { name: 'intersects', receiver: 'array', params: [other], result: 'boolean' },
  { name: 'subsetOf', receiver: 'array', params: [other], result: 'boolean' },
  { name: 'supersetOf', receiver: 'array', params: [other], result: 'boolean' },
  { name: 'intersection', receiver: 'array', params: [other], result: 'array<elem>' },
  { name: 'distinct', receiver: 'array', params: [], result: 'array<elem>' },
  { name: 'count', receiver: 'array', params: [], result: 'number' },
  { name: 'sum', receiver: 'array', params: [perItemNumber], result: 'number' },
  { name: 'average', receiver: 'array', params: [perItemNumber], result: 'number' },
  { name: 'min', receiver: 'array', params: [perItemNumber], result: 'number' },
  { name: 'max', receiver: 'array', params: [perItemNumber], result: 'number' },
  { name: 'head', receiver: 'array', params: [], result: 'elem' },
  ...['topN', 'bottomN'].map(
    (name): MethodSignature => ({
      name,
      receiver: 'array',
      params: [
        { name: 'path', type: 'ordered', perItem: true },
        { name: 'n', type: 'number', literal: 'count' },
      ],
      result: 'array<elem>',
    }),
  ),
  { name: 'exists', receiver: 'array', params: [condition], result: 'boolean' },
  { name: 'forall', receiver: 'array', params: [condition], result: 'boolean' },
  // Maps
  { name: 'get', receiver: 'map', params: [{ name: 'key', type: 'string' }], result: 'elem' },
  { name: 'keys', receiver: 'map', params: [], result: 'array<string>' },
  { name: 'values', receiver: 'map', params: [], result: 'array<elem>' },
  // Date and time
  { name: 'getYear', receiver: 'datetime', params: [], result: 'number' },
  { name: 'getMonth', receiver: 'datetime', params: [], result: 'number' },
  { name: 'getDayOfMonth', receiver: 'datetime', params: [], result: 'number' },
];

const FUNCTION_LIST: FunctionSignature[] = [
  {
    name: 'date',
    overloads: [
      [
        { name: 'year', type: 'number' },
        { name: 'month', type: 'number' },
        { name: 'day', type: 'number' },
      ],
      [{ name: 'text', type: 'string' }],
    ],
    result: 'datetime',
    dateLiteral: 'date',
  },
  { name: 'datetime', overloads: [[{ name: 'text', type: 'string' }]], result: 'datetime', dateLiteral: 'datetime' },
  {
    name: 'inSegment',
    overloads: [[{ name: 'audience', type: 'string', literal: 'string' }]],
    result: 'boolean',
  },
  {
    name: 'if',
    overloads: [
      [
        { name: 'condition', type: 'boolean' },
        { name: 'then', type: 'T' },
        { name: 'else', type: 'T' },
      ],
    ],
    result: 'T',
  },
  { name: 'age', overloads: [[{ name: 'date', type: 'datetime' }]], result: 'number', readsNow: true },
  { name: 'currentYear', overloads: [[]], result: 'number', readsNow: true },
  { name: 'currentMonth', overloads: [[]], result: 'number', readsNow: true },
  { name: 'currentDayOfMonth', overloads: [[]], result: 'number', readsNow: true },
];

export const METHODS: ReadonlyMap<string, MethodSignature> = new Map(METHOD_LIST.map((m) => [m.name, m]));
export const FUNCTIONS: ReadonlyMap<string, FunctionSignature> = new Map(FUNCTION_LIST.map((f) => [f.name, f]));
