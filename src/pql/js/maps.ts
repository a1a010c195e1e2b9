/**
 * The maps the JS engine builds itself: `a.groupBy(path)` and `a.map(x => mapEntry(key, value))`
 * (docs/pql-semantics.md, "Arrays and maps"). A `Map`, not a plain object, so the keys stay in
 * order of first appearance whatever they look like (an object would put "10" before "a"),
 * which is the order the SQL engine gives `keys()` and `values()`.
 */
import { isMissing } from '../runtime/index.js';

export class BuiltMap {
  constructor(readonly entries: ReadonlyMap<string, unknown>) {}

  /** As a value to look at (`evaluateProfile`): a JSON object. */
  toJSON(): Record<string, unknown> {
    return Object.fromEntries(this.entries);
  }
}

/** What `mapEntry(key, value)` evaluates to, one item's contribution to a map. */
export class MapEntry {
  constructor(
    readonly key: unknown,
    readonly value: unknown,
  ) {}
}

/**
 * The map of `entries`: an entry whose key is not a string or whose value is missing is left
 * out; when a key repeats, the later entry's value wins (the key keeps its first place).
 */
export function entriesMap(entries: readonly unknown[]): BuiltMap {
  const out = new Map<string, unknown>();
  for (const entry of entries) {
    if (!(entry instanceof MapEntry) || typeof entry.key !== 'string' || isMissing(entry.value)) continue;
    out.set(entry.key, entry.value);
  }
  return new BuiltMap(out);
}

/** Each string key to its items, in order; items without a string key are left out. */
export function groupItems(items: readonly unknown[], keys: readonly unknown[]): BuiltMap {
  const groups = new Map<string, unknown[]>();
  items.forEach((item, i) => {
    const key = keys[i];
    if (typeof key !== 'string') return;
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  });
  return new BuiltMap(groups);
}
