/**
 * What is kept per connection (prepared statements, field catalogues, sandboxes, checked
 * definitions, streaming plans), in one object the connection carries: visible, typed, and
 * clearable in one call — instead of module-level WeakMaps nobody could see or empty.
 */

/** A typed key: `cacheKey<T>('name')` makes a key whose entries are `T`. */
interface CacheKey<T> {
  readonly name: string;
  /** Never set: carries T for the type checker. */
  readonly type?: T;
}

export function cacheKey<T>(name: string): CacheKey<T> {
  return { name };
}

export class ConnectionCache {
  private readonly entries = new Map<CacheKey<unknown>, unknown>();

  /** The entry for `key`, built by `build` the first time. */
  get<T>(key: CacheKey<T>, build: () => T): T {
    if (this.entries.has(key)) return this.entries.get(key) as T;
    const value = build();
    this.entries.set(key, value);
    return value;
  }

  /** Forgets one entry, or everything (e.g. after the schema or the definitions changed elsewhere). */
  clear(key?: CacheKey<unknown>): void {
    if (key) this.entries.delete(key);
    else this.entries.clear();
  }

  /** The names of what is held, for diagnostics and tests. */
  names(): string[] {
    return [...this.entries.keys()].map((k) => k.name);
  }
}
