/**
 * The `api` bench's floor, run as its own process: `node --import tsx bench/api-floor.ts <port>
 * <response.json>`. The project's own yoga and graphql serve the SDL of schema.graphql (built with
 * `buildSchema`, so no Pothos and no resolvers of ours) and answer from the captured response of
 * SegQL's page query: the root field hands back the captured value and every field below it is
 * graphql's default resolver. No database, no plugins: what the same query and response cost
 * with nothing of SegQL in the way.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { buildSchema } from 'graphql';
import { createYoga } from 'graphql-yoga';
import { ROOT } from './lib.js';

const [port, responseFile] = process.argv.slice(2);
if (!port || !responseFile) throw new Error('usage: api-floor.ts <port> <response.json>');
const captured = JSON.parse(readFileSync(responseFile, 'utf8')) as { data: Record<string, unknown> };
const schema = buildSchema(readFileSync(`${ROOT}/schema.graphql`, 'utf8'));
// Custom scalars of buildSchema serialise as the identity, which suits values captured as JSON.
const query = schema.getQueryType()!.getFields();
for (const [name, value] of Object.entries(captured.data)) {
  const field = query[name];
  if (!field) throw new Error(`schema.graphql has no Query.${name}`);
  field.resolve = () => value;
}
const yoga = createYoga({ schema, logging: false, landingPage: false, graphiql: false });
createServer(yoga).listen(Number(port), '127.0.0.1', () => {
  process.stdout.write(`listening ${port}\n`);
});
