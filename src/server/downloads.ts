/**
 * GET /datasets/:id/files/:name: a dataset file, streamed, under the same key, scope and
 * sandbox rules as GraphQL (read scope), with Content-Length, an ETag that is the file's SHA-256,
 * and single byte ranges. Only files a finished export recorded are served, so a temporary file
 * or one a crashed export left behind is never reachable.
 */
import { createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { GraphQLError } from 'graphql';
import type { Store } from '../db/store.js';
import { datasetDir, datasetFile, datasetsByIds } from '../domain/exports/datasets.js';
import { internalId } from '../domain/ids.js';
import type { Access } from './access.js';

export const DOWNLOAD_PATH = /^\/datasets\/([^/]+)\/files\/([^/]+)$/;

const STATUS_OF: Record<string, number> = { UNAUTHENTICATED: 401, FORBIDDEN: 403, RATE_LIMITED: 429, NOT_FOUND: 404 };

const CONTENT_TYPES: Record<string, string> = {
  ndjson: 'application/x-ndjson',
  csv: 'text/csv; charset=utf-8',
  parquet: 'application/vnd.apache.parquet',
  json: 'application/json',
};

function fail(res: ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify({ errors: [{ message, extensions: { code } }] }));
}

/** The one range of a `Range: bytes=…` header within `size`; null when absent, 'bad' when unsatisfiable. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | null | 'bad' {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  // Several ranges or another unit: serve the whole file, as RFC 9110 allows.
  if (!m || (m[1] === '' && m[2] === '')) return null;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'bad';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) return 'bad';
  return { start, end };
}

export function createDownloads(deps: { conn: Store; dataDir: string; access: Access }) {
  const { conn, dataDir, access } = deps;
  return async function serve(req: IncomingMessage, res: ServerResponse, match: RegExpExecArray): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return fail(res, 405, 'BAD_USER_INPUT', 'Dataset files are read with GET or HEAD');
    }
    let sandboxId: number;
    try {
      const { principal, sandbox } = await access.resolve((name) => {
        const v = req.headers[name];
        return Array.isArray(v) ? v[0] : v;
      });
      if (!principal.scopes.has('read')) return fail(res, 403, 'FORBIDDEN', 'Downloading a file needs the read scope');
      sandboxId = sandbox.id;
    } catch (err) {
      if (!(err instanceof GraphQLError)) throw err;
      const code = String(err.extensions.code ?? 'UNAUTHENTICATED');
      return fail(res, STATUS_OF[code] ?? 400, code, err.message);
    }
    let rawId: string;
    let name: string;
    try {
      rawId = decodeURIComponent(match[1]!);
      name = decodeURIComponent(match[2]!);
    } catch {
      return fail(res, 404, 'NOT_FOUND', 'No such dataset file: the path is not valid percent-encoding');
    }
    const id = internalId(rawId, 'Dataset');
    const dataset = id === undefined ? undefined : (await datasetsByIds(conn, sandboxId, [id])).get(id);
    const file = dataset ? await datasetFile(conn, dataset.id, name) : undefined;
    if (!dataset || !file) {
      return fail(res, 404, 'NOT_FOUND', `No file "${name}" in dataset "${rawId}" of this sandbox`);
    }
    const etag = `"${file.sha256}"`;
    const headers: Record<string, string | number> = {
      etag,
      'accept-ranges': 'bytes',
      'content-type': CONTENT_TYPES[name.split('.').pop() ?? ''] ?? 'application/octet-stream',
      'content-disposition': `attachment; filename="${name}"`,
    };
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, headers);
      return void res.end();
    }
    const ifRange = req.headers['if-range'];
    const range = ifRange && ifRange !== etag ? null : parseRange(req.headers.range, file.bytes);
    if (range === 'bad') {
      res.writeHead(416, { ...headers, 'content-range': `bytes */${file.bytes}` });
      return void res.end();
    }
    const { start, end } = range ?? { start: 0, end: file.bytes - 1 };
    const length = file.bytes === 0 ? 0 : end - start + 1;
    if (range) headers['content-range'] = `bytes ${start}-${end}/${file.bytes}`;
    headers['content-length'] = length;
    res.writeHead(range ? 206 : 200, headers);
    if (req.method === 'HEAD' || length === 0) return void res.end();
    const stream = createReadStream(join(datasetDir(dataDir, sandboxId, dataset.id), file.name), { start, end });
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  };
}
