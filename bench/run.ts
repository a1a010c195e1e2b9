/**
 * `npm run bench -- <name> [options]`: runs `bench/<name>.bench.ts`, whose `run(args)` returns
 * the exit code (non-zero when a check inside the bench failed, e.g. a result mismatch).
 * Benches are found by file name, so adding one needs no registration here.
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

interface BenchModule {
  run(args: string[]): Promise<number> | number;
}

const dir = fileURLToPath(new URL('.', import.meta.url));
const SUFFIX = '.bench.ts';

function available(): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(SUFFIX))
    .map((f) => f.slice(0, -SUFFIX.length))
    .sort();
}

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  const names = available();
  if (!name || !names.includes(name)) {
    if (name) process.stderr.write(`unknown bench "${name}"\n`);
    process.stderr.write(`usage: npm run bench -- <name> [options]\navailable: ${names.join(', ') || '(none)'}\n`);
    return name ? 1 : 2;
  }
  const mod = (await import(pathToFileURL(`${dir}${name}${SUFFIX}`).href)) as Partial<BenchModule>;
  if (typeof mod.run !== 'function') throw new Error(`bench/${name}${SUFFIX} does not export run(args)`);
  return await mod.run(args);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
