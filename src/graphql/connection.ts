import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, type Page } from '../domain/paging.js';

/** A domain page as a Relay connection result. */
export function toConnection<T>(page: Page<T> & { totalCount: number | (() => number | Promise<number>) }) {
  return {
    edges: page.items.map((node, i) => ({ node, cursor: page.cursors[i]! })),
    pageInfo: {
      hasNextPage: page.hasNextPage,
      hasPreviousPage: page.hasPreviousPage,
      startCursor: page.cursors[0] ?? null,
      endCursor: page.cursors[page.cursors.length - 1] ?? null,
    },
    totalCount: page.totalCount,
  };
}

/**
 * Cost of a connection field: 2 for the page and count queries, plus each item's cost times the
 * page size (the complexity plugin alone would count any page as ten items). Items cost what
 * their objects cost (builder.ts), so a flat page of 500 costs about 500 and a page of pages
 * multiplies.
 */
export const connectionComplexity = (args: { first?: number | null; last?: number | null }) => ({
  field: 2,
  // Capped at the maximum page size: a page over it is refused as BAD_USER_INPUT by the resolver, which says why.
  multiplier: Math.max(1, Math.min(MAX_PAGE_SIZE, args.first ?? args.last ?? DEFAULT_PAGE_SIZE)),
});
