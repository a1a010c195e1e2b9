/**
 * graphql-js tests every type check (isInputObjectType, isNonNullType, …) that fails against
 * copies of itself from another module realm unless NODE_ENV is `production` when it is loaded: a
 * development aid that was a quarter of coercing `ingestEvents`' variables (~2 of 8 µs an event
 * on the `stream` bench). The server runs one graphql (the lockfile's), so it loads graphql's
 * checks in their production form whatever NODE_ENV says to the rest of the process (yoga and
 * GraphiQL read it too). Imported first by the command line: graphql reads NODE_ENV once, when
 * that module is first evaluated, and caches it as every CommonJS module is.
 */
import { createRequire } from 'node:module';

const before = process.env.NODE_ENV;
process.env.NODE_ENV = 'production';
try {
  createRequire(import.meta.url)('graphql/jsutils/instanceOf.js');
} finally {
  if (before === undefined) delete process.env.NODE_ENV;
  else process.env.NODE_ENV = before;
}
