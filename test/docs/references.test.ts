/**
 * Every document reference in the repository resolves inside it: a contributor who reads
 * "see docs/pql.md §7" in a comment can open that file and find that section. Checked:
 * - path-like names ending in `.md` in every tracked text file (comments, docs, test names,
 *   the generated SDL), with or without a directory: a bare name resolves when some tracked
 *   file has that name, a path when it exists relative to the repository root or to the
 *   citing file's directory;
 * - that nothing points into the team's private folder one level above the repository;
 * - where a reference names a section (`§7`, `"Jobs"`, `gotcha 13`), that the file has it;
 * - markdown links `[text](target)` in *.md files (outside code), web links excepted.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, normalize, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Tracked files, plus new ones not yet committed (so the check runs before the commit too). */
function repositoryFiles(): string[] {
  const out = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  return [...new Set(out.split('\0'))]
    .filter((f) => f !== '' && !f.startsWith('node_modules/') && f !== 'package-lock.json')
    .filter((f) => existsSync(join(ROOT, f)) && statSync(join(ROOT, f)).isFile())
    .sort();
}

interface Repository {
  files: ReadonlySet<string>;
  /** Directories holding at least one file (a link may name a folder). */
  dirs: ReadonlySet<string>;
  basenames: ReadonlySet<string>;
  read(path: string): string;
}

function repositoryOf(files: readonly string[], read: (path: string) => string): Repository {
  const dirs = new Set<string>();
  for (const f of files) {
    for (let d = posix.dirname(f); d !== '.'; d = posix.dirname(d)) dirs.add(d);
  }
  return { files: new Set(files), dirs, basenames: new Set(files.map((f) => basename(f))), read };
}

interface Problem {
  file: string;
  line: number;
  reference: string;
  why: string;
}

// A name ending in .md, not the tail of a longer path or URL (the lookbehind), not a longer extension.
const MD_REFERENCE = /(?<![\w./\-@:])((?:\.{1,2}\/)*(?:[\w.-]+\/)*[\w.-]*\w\.md)(?![\w-])/g;
// One level above the repository, spelled as a relative path.
const OUTSIDE = /\.\.\/shared\b/g;
const SECTION_SIGNS = /^\s*((?:§\d+)(?:\s*(?:,|and)\s*§\d+)*)/;
const QUOTED_HEADING = /^ "([^"\n]+)"/;
const GOTCHA = /^ gotchas? (\d+)/;
const MARKDOWN_LINK = /\[[^\]\n]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g;

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** The repository file a reference names, or undefined. */
function resolveReference(repo: Repository, citingFile: string, reference: string): string | undefined {
  if (!reference.includes('/')) {
    if (repo.files.has(reference)) return reference;
    if (!repo.basenames.has(reference)) return undefined;
    const here = posix.join(posix.dirname(citingFile), reference);
    return repo.files.has(here) ? here : [...repo.files].find((f) => basename(f) === reference);
  }
  const candidates = [posix.normalize(reference), posix.normalize(posix.join(posix.dirname(citingFile), reference))];
  return candidates.find((c) => !c.startsWith('..') && repo.files.has(c));
}

/** Headings of a markdown file, without `#`, backticks and surrounding space, lower-cased. */
function headingsOf(markdown: string): string[] {
  return [...markdown.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)].map((m) => m[1]!.replace(/`/g, '').toLowerCase());
}

/** What a reference's following words claim about the target (a §, a quoted heading, a gotcha), if it is not there. */
function missingSection(target: string, targetText: string, after: string): string | undefined {
  if (!target.endsWith('.md')) return undefined;
  const headings = headingsOf(targetText);
  const signs = SECTION_SIGNS.exec(after);
  if (signs) {
    for (const n of signs[1]!.match(/\d+/g)!) {
      if (!headings.some((h) => h.startsWith(`§${n} `) || h === `§${n}`)) return `${target} has no heading "§${n} …"`;
    }
    return undefined;
  }
  const quoted = QUOTED_HEADING.exec(after);
  if (quoted) {
    const wanted = quoted[1]!.replace(/`/g, '').toLowerCase();
    if (!headings.some((h) => h.startsWith(wanted))) {
      return `${target} has no heading starting "${quoted[1]}"`;
    }
    return undefined;
  }
  const gotcha = GOTCHA.exec(after);
  if (gotcha && !headings.some((h) => new RegExp(`^gotcha ${gotcha[1]}\\b`).test(h))) {
    return `${target} has no heading "Gotcha ${gotcha[1]} …"`;
  }
  return undefined;
}

/** Fenced code blocks and inline code spans blanked out (same length, so offsets and lines stay right). */
function withoutCode(markdown: string): string {
  const blank = (s: string) => s.replace(/[^\n]/g, ' ');
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, blank).replace(/`[^`\n]*`/g, blank);
}

function checkFile(repo: Repository, file: string): Problem[] {
  const text = repo.read(file);
  if (text.includes('\0')) return [];
  const problems: Problem[] = [];
  for (const m of text.matchAll(MD_REFERENCE)) {
    const reference = m[1]!;
    const target = resolveReference(repo, file, reference);
    const at = { file, line: lineOf(text, m.index), reference };
    if (!target) {
      problems.push({ ...at, why: 'no such file in the repository' });
      continue;
    }
    const after = text.slice(m.index + m[0].length, m.index + m[0].length + 120);
    const why = missingSection(target, repo.read(target), after);
    if (why) problems.push({ ...at, why });
  }
  for (const m of text.matchAll(OUTSIDE)) {
    problems.push({ file, line: lineOf(text, m.index), reference: m[0], why: 'points outside the repository' });
  }
  if (file.endsWith('.md')) {
    const prose = withoutCode(text);
    for (const m of prose.matchAll(MARKDOWN_LINK)) {
      const target = m[1]!;
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue;
      const path = decodeURIComponent(target.replace(/[#?].*$/, ''));
      const resolved = path.startsWith('/')
        ? normalize(path.slice(1))
        : posix.normalize(posix.join(posix.dirname(file), path));
      const clean = resolved.replace(/\/$/, '');
      if (!clean.startsWith('..') && (repo.files.has(clean) || repo.dirs.has(clean))) continue;
      problems.push({ file, line: lineOf(text, m.index), reference: target, why: 'markdown link to nothing' });
    }
  }
  return problems;
}

const describeProblems = (problems: Problem[]) =>
  problems.map((p) => `${p.file}:${p.line}: ${p.reference} — ${p.why}`).join('\n');

describe('the checker itself', () => {
  // Synthetic repository: names are built from pieces so this file cites nothing that is missing.
  const md = '.md';
  const files: Record<string, string> = {
    [`docs/guide${md}`]: '# Guide\n\n## §1 Shape\n\n## Jobs (one runner)\n\n### Gotcha 4: lazy\n',
    [`README${md}`]: 'See [the guide](docs/guide' + md + '#jobs) and [gone](docs/gone' + md + ').\n',
    'src/a.ts': '',
  };
  const repo = repositoryOf(Object.keys(files), (p) => files[p] ?? '');
  const check = (file: string, text: string) => {
    files[file] = text;
    return checkFile(
      repositoryOf(Object.keys(files), (p) => files[p] ?? ''),
      file,
    ).map((p) => p.why);
  };

  it('resolves bare names by basename and paths from the root or the citing directory', () => {
    expect(resolveReference(repo, 'src/a.ts', `guide${md}`)).toBe(`docs/guide${md}`);
    expect(resolveReference(repo, 'src/a.ts', `docs/guide${md}`)).toBe(`docs/guide${md}`);
    expect(resolveReference(repo, `docs/x${md}`, `guide${md}`)).toBe(`docs/guide${md}`);
    expect(resolveReference(repo, 'src/a.ts', `../docs/guide${md}`)).toBe(`docs/guide${md}`);
    expect(resolveReference(repo, 'src/a.ts', `spec/guide${md}`)).toBeUndefined();
    expect(resolveReference(repo, 'src/a.ts', `other${md}`)).toBeUndefined();
  });

  it('reports a missing file, a missing section, a path outside the repository and a dead link', () => {
    expect(check('src/a.ts', `// docs/guide${md} §1 and guide${md} "Jobs" and guide${md} gotcha 4`)).toEqual([]);
    expect(check('src/a.ts', `// spec/guide${md}`)).toEqual(['no such file in the repository']);
    expect(check('src/a.ts', `// guide${md} §2`)).toEqual([`docs/guide${md} has no heading "§2 …"`]);
    expect(check('src/a.ts', `// guide${md} §1, §3`)).toEqual([`docs/guide${md} has no heading "§3 …"`]);
    expect(check('src/a.ts', `// guide${md} "Schedules"`)).toEqual([
      `docs/guide${md} has no heading starting "Schedules"`,
    ]);
    expect(check('src/a.ts', `// guide${md} gotcha 9`)).toEqual([`docs/guide${md} has no heading "Gotcha 9 …"`]);
    expect(check('src/a.ts', `// ${'..'}/shared/x`)).toEqual(['points outside the repository']);
    expect(checkFile(repo, `README${md}`).map((p) => `${p.reference}: ${p.why}`)).toEqual([
      `docs/gone${md}: no such file in the repository`,
      `docs/gone${md}: markdown link to nothing`,
    ]);
  });

  it('ignores web addresses, longer extensions and links inside code', () => {
    expect(check('src/a.ts', `// https://example.com/x/CHANGES${md} and notes${md}x`)).toEqual([]);
    expect(check(`docs/y${md}`, '```\n[a](nowhere)\n```\nand `[b](nowhere)`\n')).toEqual([]);
  });
});

describe('references in the repository', () => {
  const files = repositoryFiles();
  const cache = new Map<string, string>();
  const repo = repositoryOf(files, (p) => {
    let text = cache.get(p);
    if (text === undefined) {
      text = readFileSync(join(ROOT, p), 'utf8');
      cache.set(p, text);
    }
    return text;
  });

  it('scans the whole tree', () => {
    expect(files).toContain('README.md');
    expect(files.some((f) => f.startsWith('src/pql/'))).toBe(true);
    expect(files).not.toContain('package-lock.json');
  });

  it('every *.md reference, section and markdown link resolves inside the repository', () => {
    const problems = files.flatMap((f) => checkFile(repo, f));
    expect(describeProblems(problems)).toBe('');
  });

  it('every source path a document names (src/…, test/…, bench/…, scripts/…) exists', () => {
    // bench/RESULTS.md is a log: each entry names the files as they were at its commit.
    const missing = files
      .filter((f) => f.endsWith('.md') && f !== 'bench/RESULTS.md')
      .flatMap((f) =>
        [...repo.read(f).matchAll(/\b((?:src|test|bench|scripts)\/[A-Za-z0-9_./-]+\.(?:ts|pql|sql))\b/g)]
          .map((m) => m[1]!)
          .filter((path) => !repo.files.has(path))
          .map((path) => `${f}: ${path}`),
      );
    expect(missing).toEqual([]);
  });

  it('the README links every reference document under docs/', () => {
    const readme = repo.read('README.md');
    const docs = files.filter((f) => dirname(f) === 'docs' && f.endsWith('.md'));
    expect(docs.length).toBeGreaterThanOrEqual(7);
    expect(docs.filter((d) => !readme.includes(`](${d})`))).toEqual([]);
  });
});
