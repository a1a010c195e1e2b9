import type { IncomingMessage } from 'node:http';

type BodyRead = { ok: true; body: Buffer } | { ok: false; received: number; declared: number | undefined };

/**
 * Reads a request body, counting bytes as they arrive, and stops at `limit`: a chunked body
 * (no Content-Length) is held to the same limit as a declared one, and nothing past the limit
 * is kept. A declared length over the limit is refused before reading anything.
 */
export function readBodyWithin(req: IncomingMessage, limit: number): Promise<BodyRead> {
  const header = req.headers['content-length'];
  const declared = header !== undefined && /^\d+$/.test(header) ? Number(header) : undefined;
  if (declared !== undefined && declared > limit) {
    return Promise.resolve({ ok: false, received: 0, declared });
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > limit) {
        cleanup();
        req.pause();
        chunks.length = 0;
        resolve({ ok: false, received, declared });
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve({ ok: true, body: Buffer.concat(chunks, received) });
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/** The GraphQL-shaped body of a 413: the limit and as much as is known of what was sent. */
export function payloadTooLarge(limit: number, read: { received: number; declared: number | undefined }) {
  const message =
    read.declared !== undefined
      ? `Request body of ${read.declared} bytes exceeds the limit of ${limit} bytes (SEGQL_MAX_BODY_BYTES)`
      : `Request body exceeds the limit of ${limit} bytes (SEGQL_MAX_BODY_BYTES): reading stopped after ${read.received} bytes of a body sent without Content-Length`;
  return {
    errors: [
      {
        message,
        extensions: {
          code: 'PAYLOAD_TOO_LARGE',
          limit,
          ...(read.declared !== undefined ? { actual: read.declared } : { received: read.received }),
        },
      },
    ],
  };
}
