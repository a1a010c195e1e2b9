import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { writeReadmeOperations } from '../../scripts/readme-operations.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const fixtures = join(root, 'test/fixtures/codegen');
// Inside the repository (git-ignored) so the generated code resolves the installed packages.
mkdirSync(join(root, '.codegen'), { recursive: true });
const dir = mkdtempSync(join(root, '.codegen', 'run-'));

function run(bin: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(join(root, 'node_modules/.bin', bin), args, { cwd: root, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, output: stdout + stderr });
    });
  });
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('GraphQL Code Generator (client-preset) on the README operations', () => {
  it('generates typed documents that type-check in use, with DateTime and JSON mapped', {
    timeout: 90_000,
  }, async () => {
    const operations = join(dir, 'operations');
    const readme = writeReadmeOperations(operations);
    expect(readme.length).toBeGreaterThanOrEqual(6);
    copyFileSync(join(fixtures, 'operations.graphql'), join(operations, 'fixture.graphql'));
    const JSON_VALUE = 'string | number | boolean | null | { [key: string]: unknown } | unknown[]';
    writeFileSync(
      join(dir, 'codegen.json'),
      JSON.stringify({
        schema: join(root, 'schema.graphql'),
        documents: [join(operations, '*.graphql')],
        emitLegacyCommonJSImports: false,
        generates: {
          [`${join(dir, 'gql')}/`]: {
            preset: 'client',
            presetConfig: { fragmentMasking: false },
            config: {
              strictScalars: true,
              useTypeImports: true,
              scalars: { DateTime: 'string', JSON: JSON_VALUE, File: 'File' },
            },
          },
        },
      }),
    );
    const generated = await run('graphql-codegen', ['--config', join(dir, 'codegen.json')]);
    expect(generated.output).not.toMatch(/error/i);
    expect(generated.code).toBe(0);
    const types = readFileSync(join(dir, 'gql/graphql.ts'), 'utf8');
    const declared = [...types.matchAll(/^export type (\w+) = /gm)].map((m) => m[1]);
    for (const name of ['FirstLookQuery', 'IngestMutation', 'CheckQuery', 'ProgressSubscription', 'PortalQuery'])
      expect(declared).toContain(name);
    // The scalar mappings themselves are asserted by usage.ts's @ts-expect-error lines.

    copyFileSync(join(fixtures, 'usage.ts'), join(dir, 'usage.ts'));
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({ extends: '../../tsconfig.json', include: ['./**/*.ts'], exclude: [] }),
    );
    const checked = await run('tsc', ['--noEmit', '-p', join(dir, 'tsconfig.json')]);
    expect(checked.output).toBe('');
    expect(checked.code).toBe(0);
  });
});
