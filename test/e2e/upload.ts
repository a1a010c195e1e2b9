import { Readable } from 'node:stream';
/** A GraphQL multipart request (the multipart request spec) whose file part is streamed from `chunks`. */
export async function uploadList(
  url: string,
  query: string,
  variables: Record<string, unknown>,
  file: { name: string; chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array> },
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any }> {
  const boundary = `----segql${Math.random().toString(16).slice(2)}`;
  const head =
    `--${boundary}\r\ncontent-disposition: form-data; name="operations"\r\n\r\n` +
    `${JSON.stringify({ query, variables: { ...variables, file: null } })}\r\n` +
    `--${boundary}\r\ncontent-disposition: form-data; name="map"\r\n\r\n${JSON.stringify({ 0: ['variables.file'] })}\r\n` +
    `--${boundary}\r\ncontent-disposition: form-data; name="0"; filename="${file.name}"\r\ncontent-type: text/csv\r\n\r\n`;
  const tail = `\r\n--${boundary}--\r\n`;
  async function* body() {
    yield Buffer.from(head);
    for await (const chunk of file.chunks) yield chunk;
    yield Buffer.from(tail);
  }
  const stream = Readable.toWeb(Readable.from(body()));
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, ...headers },
    body: stream,
    duplex: 'half',
  } as RequestInit);
  return { status: res.status, body: await res.json() };
}

export const START_INGESTION = `mutation ($id: ID!, $file: File, $rows: [JSON!], $mode: IngestionMode) {
  startExternalAudienceIngestion(id: $id, file: $file, rows: $rows, mode: $mode) { id status }
}`;

export const RUN = `query ($id: ID!) { node(id: $id) { ... on IngestionRun {
  status error recordsRead recordsImported recordsMatched recordsFailed
  errors(first: 100) { totalCount edges { node { line message } } }
} } }`;
