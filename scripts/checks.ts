/**
 * The checks `npm test` runs before the test suites: the type check, Biome, the schema drift
 * check and the schema lint, at the same time. One after another they took about 20 s of a run on
 * the 2-core CI machine while using one core; each is still its own npm script. Each check's
 * output is printed whole when it ends, in this order; the exit code is 1 when any failed.
 */
import { spawn } from 'node:child_process';

const CHECKS = ['typecheck', 'lint', 'schema:check', 'lint:schema'];

function run(script: string): Promise<{ script: string; code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('npm', ['run', '-s', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on('error', (err) => resolve({ script, code: null, output: `${output}${err.message}\n` }));
    child.on('close', (code) => resolve({ script, code, output }));
  });
}

const results = await Promise.all(CHECKS.map(run));
for (const { script, code, output } of results) {
  process.stdout.write(output);
  if (code !== 0) process.stderr.write(`npm run ${script} failed (exit code ${code})\n`);
}
process.exitCode = results.every((r) => r.code === 0) ? 0 : 1;
