/**
 * Stack traces through the run's build (test/build.ts) name the lines of src/. The test processes
 * import the build with Node's own loader, and vite's stack trace hook (which vitest installs)
 * maps only the modules vite ran itself: without this, a frame of src/ would name a line of a
 * compiled file in a directory removed when the run ends. Each frame in the build is mapped
 * through the source map beside its file, read when a stack first passes through that file, and
 * the frames go on to the hook that was there before.
 */
import { readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inject } from 'vitest';

type Prepare = (error: Error, frames: NodeJS.CallSite[]) => unknown;

const installed = Symbol.for('segql.buildSourceMaps');
const build = inject('segqlBuild');
const global = globalThis as { [installed]?: true };

if (build && !global[installed]) {
  global[installed] = true;
  const buildPrefix = `${resolve(build, 'src')}/`;
  const maps = new Map<string, SourceMap | null>();

  const mapOf = (file: string): SourceMap | null => {
    let map = maps.get(file);
    if (map === undefined) {
      try {
        map = new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8')));
      } catch {
        map = null;
      }
      maps.set(file, map);
    }
    return map;
  };

  // A frame of the build as the frame of src/ it came from; every other method asks the real frame.
  class MappedFrame {
    constructor(
      readonly frame: NodeJS.CallSite,
      readonly file: string,
      readonly line: number,
      readonly column: number,
    ) {}
    getFileName() {
      return this.file;
    }
    getScriptNameOrSourceURL() {
      return this.file;
    }
    getLineNumber() {
      return this.line;
    }
    getColumnNumber() {
      return this.column;
    }
    // V8's own form of a frame (a method as `Type.method`), for a hook that prints the frame as it is.
    toString() {
      const frame = this.frame;
      const at = `${this.file}:${this.line}:${this.column}`;
      const fn = frame.getFunctionName();
      if (frame.isConstructor()) return `new ${fn ?? '<anonymous>'} (${at})`;
      if (frame.isToplevel()) return fn ? `${fn} (${at})` : at;
      const type = frame.getTypeName();
      const method = frame.getMethodName();
      const name = fn ? (type && !fn.startsWith(type) ? `${type}.${fn}` : fn) : `${type}.${method ?? '<anonymous>'}`;
      const alias = fn && method && method !== fn && !fn.endsWith(`.${method}`) ? ` [as ${method}]` : '';
      return `${frame.isAsync() ? 'async ' : ''}${name}${alias} (${at})`;
    }
  }
  const captured: Prepare = (_, frames) => frames;
  const original = Error.prepareStackTrace;
  Error.prepareStackTrace = captured as typeof Error.prepareStackTrace;
  const sample = (new Error().stack as unknown as NodeJS.CallSite[])[0];
  Error.prepareStackTrace = original;
  for (const name of Object.getOwnPropertyNames(Object.getPrototypeOf(sample))) {
    if (name === 'constructor' || Object.hasOwn(MappedFrame.prototype, name)) continue;
    Object.defineProperty(MappedFrame.prototype, name, {
      value(this: MappedFrame, ...args: unknown[]) {
        return Reflect.apply(Reflect.get(this.frame, name), this.frame, args);
      },
    });
  }

  const mapped = (frame: NodeJS.CallSite): NodeJS.CallSite => {
    const name = frame.getFileName();
    const file = name?.startsWith('file://') ? fileURLToPath(name) : name;
    const line = frame.getLineNumber();
    const column = frame.getColumnNumber();
    if (!file?.startsWith(buildPrefix) || line == null || column == null) return frame;
    const entry = mapOf(file)?.findEntry(line - 1, column - 1);
    if (!entry || !('originalSource' in entry)) return frame;
    const source = resolve(dirname(file), entry.originalSource);
    return new MappedFrame(
      frame,
      source,
      entry.originalLine + 1,
      entry.originalColumn + 1,
    ) as unknown as NodeJS.CallSite;
  };

  const previous = Error.prepareStackTrace as Prepare | undefined;
  Error.prepareStackTrace = ((error: Error, frames: NodeJS.CallSite[]) => {
    const sites = frames.map(mapped);
    if (previous) return previous(error, sites);
    return `${error}${sites.map((site) => `\n    at ${site}`).join('')}`;
  }) as typeof Error.prepareStackTrace;
}
