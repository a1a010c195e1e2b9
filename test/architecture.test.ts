/**
 * The layering, checked from the import statements themselves: src/pql is a library the rest
 * reaches through its index only; src/pql and src/domain know nothing of GraphQL; and no file
 * imports itself back through a chain of others.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const src = join(root, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/**
 * The relative module names a source text imports: `import … from`, `export … from` (type-only
 * too), a bare `import './x.js'` (loaded for its side effects, e.g. registering GraphQL types)
 * and a dynamic `import('./x.js')` (a module loaded only when configured is still a dependency).
 */
function importSpecifiers(text: string): string[] {
  const forms = [
    /(?:^|\n)\s*(?:import|export)\b[^'";]*?from\s*['"](\.{1,2}\/[^'"]+)['"]/g,
    /(?:^|\n)\s*import\s*['"](\.{1,2}\/[^'"]+)['"]/g,
    /\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g,
  ];
  return forms.flatMap((form) => [...text.matchAll(form)].map((m) => m[1]!));
}

/** Every relative import of a file, resolved to the .ts file it names. */
function importsOf(file: string): string[] {
  return importSpecifiers(readFileSync(file, 'utf8')).map((s) => resolve(dirname(file), s.replace(/\.js$/, '.ts')));
}

const files = sourceFiles(src);
const graph = new Map(files.map((f) => [f, importsOf(f)]));
const rel = (f: string) => relative(root, f);

/** Strongly connected components with more than one file (Tarjan): each is an import cycle. */
function cycles(): string[][] {
  let index = 0;
  const stack: string[] = [];
  const onStack = new Set<string>();
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const found: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(rel(w));
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const f of files) if (!idx.has(f)) visit(f);
  return found;
}

describe('layering', () => {
  it('sees every form of import', () => {
    const text = [
      "import { a } from './a.js';",
      "import type { B } from '../b.js';",
      'import {\n  c,\n  d,\n} from "./c.js";',
      "export { e } from './e.js';",
      "export * from './f.js';",
      "import './g.js';",
      "const h = await import('./h.js');",
      "import { x } from 'node:fs';",
    ].join('\n');
    expect(importSpecifiers(text)).toEqual(['./a.js', '../b.js', './c.js', './e.js', './f.js', './g.js', './h.js']);
  });

  it('reaches src/pql from outside only through src/pql/index.ts', () => {
    const pql = join(src, 'pql');
    const pqlIndex = join(pql, 'index.ts');
    const deep = [...graph].flatMap(([file, deps]) =>
      file.startsWith(pql + '/')
        ? []
        : deps.filter((d) => d.startsWith(pql + '/') && d !== pqlIndex).map((d) => `${rel(file)} -> ${rel(d)}`),
    );
    expect(deep).toEqual([]);
  });

  it('keeps src/pql and src/domain free of src/graphql and the server', () => {
    const upward = [...graph].flatMap(([file, deps]) =>
      /\/src\/(pql|domain|db)\//.test(file)
        ? deps.filter((d) => /\/src\/(graphql\/|server\.ts|cli\.ts)/.test(d)).map((d) => `${rel(file)} -> ${rel(d)}`)
        : [],
    );
    expect(upward).toEqual([]);
  });

  it('keeps src/pql free of I/O: no database, no domain', () => {
    const pql = join(src, 'pql');
    const impure = [...graph].flatMap(([file, deps]) =>
      file.startsWith(pql + '/')
        ? deps.filter((d) => !d.startsWith(pql + '/')).map((d) => `${rel(file)} -> ${rel(d)}`)
        : [],
    );
    expect(impure).toEqual([]);
  });

  it('has no import cycles', () => {
    expect(cycles()).toEqual([]);
  });
});
