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
 * Cost of a connection field: its page size drives the multiplier (the complexity plugin
 * alone would count any page as ×10, STACK.md gotcha 8).
 */
export const connectionComplexity = (args: { first?: number | null; last?: number | null }) => ({
  field: 2,
  // Capped at the maximum page size: a page over it is refused as BAD_USER_INPUT by the resolver, which says why.
  multiplier: Math.max(1, Math.ceil(Math.min(MAX_PAGE_SIZE, args.first ?? args.last ?? DEFAULT_PAGE_SIZE) / 10)),
});
