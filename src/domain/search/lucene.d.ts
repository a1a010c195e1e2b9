/** The parts of `lucene` 2.1.1 (no bundled types) that the search query reader uses. */
declare module 'lucene' {
  export interface LuceneLocation {
    start: { offset: number; line: number; column: number };
    end: { offset: number; line: number; column: number };
  }
  export interface LuceneTerm {
    field: string;
    fieldLocation: LuceneLocation | null;
    term: string;
    quoted: boolean;
    regex: boolean;
    termLocation: LuceneLocation;
    similarity?: number | null;
    proximity?: number | null;
    boost: number | null;
    prefix: '+' | '-' | '!' | null;
  }
  export interface LuceneRange {
    field: string;
    term_min: string;
    term_max: string;
  }
  export interface LuceneNode {
    left: LuceneNode | LuceneTerm | LuceneRange;
    operator?: string;
    right?: LuceneNode | LuceneTerm | LuceneRange;
    start?: string;
    parenthesized?: boolean;
    /** A `field:(…)` group's field, applying to the terms inside that name none. */
    field?: string;
    fieldLocation?: LuceneLocation | null;
  }
  export interface LuceneSyntaxError extends Error {
    location?: LuceneLocation;
  }
  export function parse(query: string): LuceneNode;
  const lucene: { parse: typeof parse };
  export default lucene;
}
