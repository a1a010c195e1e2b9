/**
 * GraphQL multipart requests (file uploads) read as a stream: each file part goes to a temporary
 * file under the data directory as it arrives, held to the upload limit, and the operation gets a
 * File that reads that file back. yoga's own multipart parser holds every upload in memory, and
 * the 1 MiB pre-read of JSON bodies would refuse any real file, so multipart requests skip both.
 */
import { randomUUID } from 'node:crypto';
import { createWriteStream, mkdirSync, rmSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Busboy, type BusboyHeaders } from '@fastify/busboy';
import type { Plugin } from 'graphql-yoga';
import type { UploadedFile } from '../graphql/scalars.js';

export const isMultipart = (contentType: string | null | undefined) =>
  /^multipart\/form-data\b/i.test(contentType ?? '');

/** An uploaded file kept on disk while the request runs. */
class DiskFile implements UploadedFile {
  constructor(
    readonly name: string,
    readonly type: string,
    readonly path: string,
  ) {}

  /** Read chunk by chunk as the consumer asks (pull), so a slow consumer never makes the file pile up in memory. */
  stream(): ReadableStream<Uint8Array> {
    const path = this.path;
    let file: FileHandle | undefined;
    return new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          file ??= await open(path, 'r');
          const chunk = Buffer.allocUnsafe(256 * 1024);
          const { bytesRead } = await file.read(chunk, 0, chunk.length, null);
          if (bytesRead === 0) {
            await file.close();
            controller.close();
          } else {
            controller.enqueue(chunk.subarray(0, bytesRead));
          }
        },
        async cancel() {
          await file?.close();
        },
      },
      { highWaterMark: 1 },
    );
  }
}

class UploadError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

function setPath(target: unknown, path: string, value: unknown): void {
  const keys = path.split('.');
  let current = target as Record<string, unknown>;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    if (key === '__proto__' || key === 'constructor' || key === 'prototype') return;
    if (i === keys.length - 1) {
      current[key] = value;
      return;
    }
    const next = current[key];
    if (typeof next !== 'object' || next === null) return;
    current = next as Record<string, unknown>;
  }
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8' },
  });
}

/**
 * Reads a multipart request: `operations` and `map` fields, then the files they map. Returns the
 * GraphQL params with File variables, or an error response (413 past `maxBytes`, 400 malformed).
 */
async function readMultipart(
  req: IncomingMessage,
  options: { maxBytes: number; maxFieldBytes: number; dir: string; temporary: string[] },
): Promise<unknown> {
  mkdirSync(options.dir, { recursive: true });
  const fields = new Map<string, string>();
  const files = new Map<string, DiskFile>();
  const writes: Promise<void>[] = [];
  let received = 0;
  const busboy = new Busboy({
    headers: req.headers as BusboyHeaders,
    limits: { fieldSize: options.maxFieldBytes, fields: 10, files: 10 },
  });
  await new Promise<void>((resolve, reject) => {
    const fail = (err: unknown) => {
      req.unpipe(busboy);
      req.resume();
      reject(err);
    };
    req.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > options.maxBytes) {
        fail(
          new UploadError(
            413,
            'PAYLOAD_TOO_LARGE',
            `The upload exceeds the limit of ${options.maxBytes} bytes (SEGQL_MAX_UPLOAD_BYTES)`,
            { limit: options.maxBytes },
          ),
        );
      }
    });
    busboy.on('field', (name, value, _nameTruncated, valueTruncated) => {
      if (valueTruncated) {
        fail(
          new UploadError(
            413,
            'PAYLOAD_TOO_LARGE',
            `The multipart field "${name}" is over ${options.maxFieldBytes} bytes`,
          ),
        );
      }
      fields.set(name, value);
    });
    busboy.on('file', (name, stream, filename, _encoding, mimeType) => {
      const path = join(options.dir, `request-${randomUUID()}.part`);
      options.temporary.push(path);
      files.set(name, new DiskFile(filename, mimeType, path));
      writes.push(pipeline(stream, createWriteStream(path)));
    });
    busboy.on('finish', resolve);
    busboy.on('error', (err) => fail(new UploadError(400, 'BAD_REQUEST', `Malformed multipart body: ${String(err)}`)));
    req.on('error', fail);
    req.pipe(busboy);
  });
  await Promise.all(writes);
  const operationsText = fields.get('operations');
  if (operationsText === undefined) throw new UploadError(400, 'BAD_REQUEST', 'Missing multipart field "operations"');
  let operations: unknown;
  let map: Record<string, string[]>;
  try {
    operations = JSON.parse(operationsText);
    map = JSON.parse(fields.get('map') ?? '{}') as Record<string, string[]>;
  } catch {
    throw new UploadError(400, 'BAD_REQUEST', 'The multipart fields "operations" and "map" must be JSON');
  }
  for (const [part, paths] of Object.entries(map)) {
    const file = files.get(part);
    if (!file)
      throw new UploadError(400, 'BAD_REQUEST', `The map names file "${part}", which the request does not carry`);
    for (const path of Array.isArray(paths) ? paths : []) setPath(operations, path, file);
  }
  return operations;
}

/** The yoga plugin: multipart POSTs are parsed by `readMultipart`, their files removed once the response is out. */
export function streamedUploads(options: { dataDir: string; maxBytes: number; maxFieldBytes: number }): Plugin {
  const dir = join(options.dataDir, 'uploads', 'incoming');
  return {
    onRequestParse({ request, serverContext, setRequestParser }) {
      const req = (serverContext as { req?: IncomingMessage }).req;
      if (request.method !== 'POST' || !req || !isMultipart(request.headers.get('content-type'))) return;
      setRequestParser(async () => {
        const temporary: string[] = [];
        const res = (serverContext as { res?: { once(event: string, f: () => void): void } }).res;
        const cleanup = () => {
          for (const path of temporary) rmSync(path, { force: true });
        };
        if (res) res.once('close', cleanup);
        try {
          return (await readMultipart(req, { ...options, dir, temporary })) as never;
        } catch (err) {
          cleanup();
          if (!(err instanceof UploadError)) throw err;
          return json(err.status, {
            errors: [{ message: err.message, extensions: { code: err.code, ...err.extensions } }],
          });
        }
      });
    },
  };
}
