export type * from './ast.js';
export { PqlError } from './errors.js';
export { fromJson, type PqlJson, toJson } from './json.js';
export { parse } from './parser.js';
export { print } from './printer.js';
export { children, walk } from './visitor.js';
