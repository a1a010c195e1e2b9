/** Writes schema.graphql from the Pothos schema; with --check, fails when the committed file has drifted. */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { printedSchema } from '../src/graphql/index.js';

const file = fileURLToPath(new URL('../schema.graphql', import.meta.url));
const sdl = printedSchema();
if (process.argv.includes('--check')) {
  let committed = '';
  try {
    committed = readFileSync(file, 'utf8');
  } catch {}
  if (committed !== sdl) {
    console.error('schema.graphql is out of date with the Pothos schema: run `npm run schema` and commit it.');
    process.exit(1);
  }
  console.log('schema.graphql matches the Pothos schema');
} else {
  writeFileSync(file, sdl);
  console.log(`wrote ${file}`);
}
