/**
 * The per-query budget as the query code sees it: a deadline, checked between pieces of work,
 * and the error that stops a query past it (the pool answers QUERY_TIMEOUT for it).
 */

/** Thrown by a query that has run past its deadline. */
export class QueryTimedOut extends Error {
  constructor() {
    super('the query ran past its deadline');
    this.name = 'QueryTimedOut';
  }
}

/** A check that throws QueryTimedOut once `deadline` (epoch ms) has passed. */
export function deadlineCheck(deadline: number): () => void {
  return () => {
    if (Date.now() > deadline) throw new QueryTimedOut();
  };
}
