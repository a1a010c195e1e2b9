import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Pothos and yoga load graphql's CJS build; without the alias a test file would get the ESM one (docs/dependencies.md gotcha 2).
  resolve: { alias: [{ find: /^graphql$/, replacement: 'graphql/index.js' }] },
  test: {
    pool: 'forks',
    // Vitest's default is one fewer fork than cores: one fork on the 2-core CI machine, which then
    // runs the files one after another while most of them wait on servers, children and timers.
    maxWorkers: 2,
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
