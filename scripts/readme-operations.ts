/**
 * The GraphQL operations the README shows (its ```graphql blocks), so code generators and tests
 * check exactly what a reader would paste. `tsx scripts/readme-operations.ts DIR` writes one
 * `.graphql` file per block into DIR.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const README = fileURLToPath(new URL('../README.md', import.meta.url));

/** The body of every fenced block tagged `graphql`, in order. */
export function graphqlBlocks(markdown: string): string[] {
  const blocks: string[] = [];
  const fence = /^```graphql[^\n]*\n([\s\S]*?)^```/gm;
  for (let match = fence.exec(markdown); match; match = fence.exec(markdown)) blocks.push(match[1]!);
  return blocks;
}

/** Writes README.md's operations into `dir` as readme-1.graphql, readme-2.graphql, …; returns the paths. */
export function writeReadmeOperations(dir: string, markdown = readFileSync(README, 'utf8')): string[] {
  mkdirSync(dir, { recursive: true });
  return graphqlBlocks(markdown).map((block, i) => {
    const file = join(dir, `readme-${i + 1}.graphql`);
    writeFileSync(file, block);
    return file;
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write('usage: tsx scripts/readme-operations.ts DIR\n');
    process.exit(2);
  }
  for (const file of writeReadmeOperations(dir)) process.stdout.write(`${file}\n`);
}
