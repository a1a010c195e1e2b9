/**
 * The HTTP side of the server: request ids and access logs, /healthz, /readyz, /metrics, the
 * body limit (with or without Content-Length), dataset file downloads, and everything else to the
 * GraphQL handler.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { ServerLimits } from '../config.js';
import type { Metrics } from '../metrics.js';
import type { Access } from './access.js';
import { type createDownloads, DOWNLOAD_PATH } from './downloads.js';
import { isMultipart } from './multipart-uploads.js';
import type { createReadiness } from './readiness.js';
import { payloadTooLarge, readBodyWithin } from './request-body.js';
import type { SegqlYoga } from './yoga.js';

const ROUTES = ['/graphql', '/healthz', '/readyz', '/metrics'];

export function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

/** The request handler, and the open SSE streams (they never end by themselves: shutdown ends them). */
export function createRequestHandler(deps: {
  yoga: SegqlYoga;
  access: Access;
  readiness: ReturnType<typeof createReadiness>;
  metrics: Metrics;
  limits: ServerLimits;
  log: Logger;
  downloads: ReturnType<typeof createDownloads>;
}): { handle(req: IncomingMessage, res: ServerResponse): Promise<void>; streams: Set<ServerResponse> } {
  const { yoga, access, readiness, metrics, limits, log, downloads } = deps;
  const streams = new Set<ServerResponse>();
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = process.hrtime.bigint();
    const requestId = (req.headers['x-request-id'] as string | undefined) ?? randomUUID();
    req.headers['x-request-id'] = requestId;
    res.setHeader('x-request-id', requestId);
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const download = DOWNLOAD_PATH.exec(path);
    const route = ROUTES.includes(path) ? path : download ? '/datasets/:id/files/:name' : 'other';
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.requests.inc({ route, status: String(res.statusCode) });
      metrics.duration.observe({ route }, seconds);
      log.info(
        { requestId, method: req.method, url: req.url, status: res.statusCode, ms: Math.round(seconds * 1000) },
        'request',
      );
    });
    try {
      if (path === '/healthz') return json(res, 200, { status: 'ok' });
      if (path === '/readyz') {
        const ready = await readiness();
        return json(res, ready.status, ready.body);
      }
      if (path === '/metrics') {
        const refused = await access.metricsRefusal(req.headers.authorization);
        if (refused) return json(res, refused.status, { errors: [refused.error] });
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(await metrics.registry.metrics());
        return;
      }
      if (download) return await downloads(req, res, download);
      if (req.method === 'POST' && isMultipart(req.headers['content-type'])) {
        // An upload streams to disk as it arrives (multipart-uploads.ts), held to its own limit.
        const declared = Number(req.headers['content-length']);
        if (Number.isFinite(declared) && declared > limits.maxUploadBytes) {
          res.setHeader('connection', 'close');
          res.on('finish', () => req.destroy());
          return json(res, 413, {
            errors: [
              {
                message: `Upload of ${declared} bytes exceeds the limit of ${limits.maxUploadBytes} bytes (SEGQL_MAX_UPLOAD_BYTES)`,
                extensions: { code: 'PAYLOAD_TOO_LARGE', limit: limits.maxUploadBytes, actual: declared },
              },
            ],
          });
        }
      } else if (req.method !== 'GET' && req.method !== 'HEAD') {
        const read = await readBodyWithin(req, limits.maxBodyBytes);
        if (!read.ok) {
          // The rest is never read: close the connection once the answer is out instead of draining it.
          res.setHeader('connection', 'close');
          res.on('finish', () => req.destroy());
          return json(res, 413, payloadTooLarge(limits.maxBodyBytes, read));
        }
        // whatwg-node takes an already read body from `req.body` (as it does behind body-parser).
        (req as IncomingMessage & { body?: unknown }).body = readBodyForYoga(req.headers['content-type'], read.body);
      }
      if (req.headers.accept?.includes('text/event-stream')) {
        streams.add(res);
        res.on('close', () => streams.delete(res));
      }
      await yoga(req, res);
    } catch (err) {
      log.error({ err, requestId }, 'request failed');
      if (!res.headersSent)
        json(res, 500, { errors: [{ message: 'Internal error', extensions: { code: 'INTERNAL', requestId } }] });
      else res.end();
    }
  };
  return { handle, streams };
}

/**
 * The body as whatwg-node should see it. A JSON request goes as its parsed object: whatwg-node
 * tests a body with `Object.keys(body).length`, which on a Buffer makes one string per byte (a
 * millisecond for a 30 KB batch of events, a tenth of an ingest's time), and yoga would parse the
 * same text anyway. Anything else — another content type, JSON that does not parse or is not a
 * non-empty object — goes as the bytes, so yoga answers it as it always has.
 */
function readBodyForYoga(contentType: string | undefined, body: Buffer): unknown {
  if (!contentType?.includes('json')) return body;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return body;
  }
  if (parsed === null || typeof parsed !== 'object' || Object.keys(parsed).length === 0) return body;
  return parsed;
}
