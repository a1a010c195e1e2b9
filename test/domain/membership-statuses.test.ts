import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  CURRENT_STATUSES_SQL,
  isCurrentStatus,
  MEMBERSHIP_STATUSES,
  statusSql,
} from '../../src/domain/membership-statuses.js';
import { CURRENT_MEMBER_STATUSES } from '../../src/pql/index.js';

const src = fileURLToPath(new URL('../../src', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** String and template literals that read as SQL statements, their interpolations (`${statusSql(…)}`) left out. */
function sqlLiterals(text: string): string[] {
  const literals = text.match(/`(?:[^`\\]|\\.)*`|"(?:[^"\\\n]|\\.)*"/g) ?? [];
  return literals.map((l) => l.replace(/\$\{[^}]*\}/g, '')).filter((l) => /\b(SELECT|UPDATE|INSERT|DELETE)\b/.test(l));
}

describe('membership statuses in SQL', () => {
  it('no statement spells a status: they take the domain vocabulary', () => {
    const spelled: string[] = [];
    for (const file of sourceFiles(src)) {
      for (const literal of sqlLiterals(readFileSync(file, 'utf8'))) {
        for (const status of MEMBERSHIP_STATUSES) {
          if (literal.includes(`'${status}'`))
            spelled.push(`${relative(src, file)}: '${status}' in ${literal.slice(0, 80)}`);
        }
      }
    }
    expect(spelled).toEqual([]);
  });

  it('the scan would see one', () => {
    expect(sqlLiterals('x.prepare("UPDATE memberships SET status = \'EXITED\'")')).toHaveLength(1);
  });

  it("the current statuses are PQL's, a subset of the domain's", () => {
    expect(CURRENT_MEMBER_STATUSES.every((s) => (MEMBERSHIP_STATUSES as readonly string[]).includes(s))).toBe(true);
    expect(MEMBERSHIP_STATUSES.filter(isCurrentStatus)).toEqual(['REALIZED', 'EXISTING']);
    expect(CURRENT_STATUSES_SQL).toBe("('REALIZED', 'EXISTING')");
    expect(statusSql('EXITED')).toBe("'EXITED'");
  });
});
