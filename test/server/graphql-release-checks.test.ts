/**
 * The server loads graphql-js's type checks in their production form (no test against copies of
 * graphql from another realm), whatever NODE_ENV is, and leaves NODE_ENV as it found it. Run in
 * a process of its own: graphql is already loaded in this one.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/** What graphql's instanceOf answers for an object that only calls itself a GraphQLScalarType. */
function probe(withChecks: boolean, nodeEnv: string | undefined): { env: string | null; answer: unknown } {
  const script = `
    ${withChecks ? "import './src/server/graphql-release-checks.ts';" : ''}
    import { GraphQLScalarType } from 'graphql';
    import { instanceOf } from 'graphql/jsutils/instanceOf.js';
    let answer;
    try {
      answer = instanceOf({ [Symbol.toStringTag]: 'GraphQLScalarType' }, GraphQLScalarType);
    } catch {
      answer = 'threw';
    }
    console.log(JSON.stringify({ env: process.env.NODE_ENV ?? null, answer }));
  `;
  const env = { ...process.env };
  if (nodeEnv === undefined) delete env.NODE_ENV;
  else env.NODE_ENV = nodeEnv;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    env,
    encoding: 'utf8',
  });
  return JSON.parse(out.trim());
}

describe('graphql type checks', () => {
  it('are loaded in their production form, NODE_ENV left as it was', () => {
    expect(probe(true, undefined)).toEqual({ env: null, answer: false });
    expect(probe(true, 'test')).toEqual({ env: 'test', answer: false });
  });

  it('would otherwise test for another realm (what the module changes)', () => {
    expect(probe(false, undefined)).toEqual({ env: null, answer: 'threw' });
  });

  it('are loaded by the command line before anything else', () => {
    const cli = readFileSync(new URL('../../src/cli.ts', import.meta.url), 'utf8');
    const firstImport = cli.split('\n').find((line) => line.startsWith('import '));
    expect(firstImport).toBe("import './server/graphql-release-checks.js';");
  });
});
