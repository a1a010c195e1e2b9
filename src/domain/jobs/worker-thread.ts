import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

const require = createRequire(import.meta.url);
// require.resolve gives the CommonJS build; the worker imports the ES module build beside it.
const tsxApi = pathToFileURL(require.resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;

/**
 * Starts a worker thread running a TypeScript module. Node 20 loads a worker's entry before
 * any `--import` hook applies, so the worker first registers tsx and then imports the module.
 */
export function startModuleWorker(moduleUrl: URL, workerData: unknown): Worker {
  const code = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(moduleUrl.href)}); })`;
  return new Worker(code, { eval: true, workerData });
}
