/** The part of pg-copy-streams 7 the PostgreSQL benches use (the package ships no types). */
declare module 'pg-copy-streams' {
  import type { Writable } from 'node:stream';
  import type { Submittable } from 'pg';

  /** `COPY … FROM STDIN` as a writable stream; pass it to `client.query`, write the rows, end it. */
  interface CopyStreamQuery extends Writable, Submittable {
    /** Rows the server reports as copied, once the stream has finished. */
    rowCount: number;
  }
  export function from(text: string): CopyStreamQuery;
}
