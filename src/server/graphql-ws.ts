/**
 * graphql-ws on the HTTP server's /graphql path: the protocol is graphql-ws's, the operations run
 * through the same yoga envelope (plugins, context, error mapping) as HTTP and SSE.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { type ExecutionResult, GraphQLError } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { isAsyncIterable } from 'graphql-yoga';
import type { Logger } from 'pino';
import { type WebSocket, WebSocketServer } from 'ws';
import { DomainError } from '../domain/errors.js';
import type { Context } from '../graphql/context.js';
import { mapResult } from '../graphql/errors.js';
import type { Access } from './access.js';
import { sendNextFrames } from './next-frames.js';
import type { SegqlYoga } from './yoga.js';

export function attachGraphqlWs(deps: {
  httpServer: Server;
  yoga: SegqlYoga;
  access: Access;
  maxPayload: number;
  log: Logger;
}): { close(): Promise<void> } {
  const { httpServer, yoga, access, log } = deps;
  const wsServer = new WebSocketServer({ server: httpServer, path: yoga.graphqlEndpoint, maxPayload: deps.maxPayload });
  // Before useServer's own listener, so graphql-ws sends through the coalescing send.
  const flusher = createFlusher();
  wsServer.on('connection', (socket) => coalesceSends(socket, flusher));
  const cleanup = useServer(
    {
      execute: (args: any) => args.rootValue.execute(args),
      subscribe: (args: any) => args.rootValue.subscribe(args),
      // A subscription refused before it streams (unknown id…) is one result that no envelop
      // hook formats on this transport: give its errors their codes here, as HTTP and SSE do.
      onNext: (_ctx, _id, _payload, args, result) =>
        mapResult(result, (args.contextValue as Partial<Context>)?.requestId, log) || undefined,
      // A key sent at connection must be valid (else 4403 Forbidden at once); a connection without
      // one is accepted, and each operation is authenticated on its own (GraphiQL sends its
      // headers with every operation, not in connection_init).
      onConnect: async (ctx) => {
        const authorization = ctx.connectionParams?.authorization;
        if (typeof authorization !== 'string') return true;
        try {
          await access.keys.authenticate(authorization);
          return true;
        } catch (err) {
          if (err instanceof DomainError) return false;
          throw err;
        }
      },
      onSubscribe: async (ctx, id, params) => {
        const {
          schema: s,
          execute,
          subscribe,
          contextFactory,
          parse,
          validate,
        } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params,
        });
        try {
          const document = parse(params.query);
          const errors = validate(s, document);
          if (errors.length > 0) return errors;
          return {
            schema: s,
            operationName: params.operationName,
            document,
            variableValues: params.variables,
            contextValue: await contextFactory(),
            rootValue: {
              execute,
              // Results without errors leave as `next` messages serialised once per shared result.
              subscribe: async (args: any) => {
                const result = await subscribe(args);
                if (!isAsyncIterable(result)) return result;
                const socket = ctx.extra.socket;
                return sendNextFrames(
                  result as AsyncIterable<ExecutionResult>,
                  socket,
                  id,
                  () => socket.bufferedAmount >= COALESCE_BYTES,
                );
              },
            },
          };
        } catch (err) {
          if (err instanceof GraphQLError) {
            return [
              err.extensions?.code ? err : new GraphQLError(err.message, { extensions: { code: 'BAD_USER_INPUT' } }),
            ];
          }
          throw err;
        }
      },
    },
    wsServer,
  );
  return {
    async close() {
      await cleanup.dispose();
      for (const client of wsServer.clients) client.terminate();
      wsServer.close();
    },
  };
}

/** Bytes a socket may hold unwritten before a send waits for its write again. */
const COALESCE_BYTES = 256 * 1024;

/**
 * How long the writes of corked sockets may hold one event-loop turn. The bus's deliveries have
 * a slice of their own in the same turn (src/domain/events.ts): a few ms each, so that with a
 * collection between them a turn stays well under 50 ms on a loaded box.
 */
const FLUSH_SLICE_MS = 4;

/**
 * The corked sockets of one server, uncorked (written) at the start of the next turn in the
 * order they were corked, at most FLUSH_SLICE_MS of writes per turn: with a thousand
 * subscribers, uncorking each in its own setImmediate made a thousand writes in one turn
 * (50–130 ms in the `subs` bench). A socket left for the next turn stays corked and gathers
 * that turn's messages too.
 */
export function createFlusher(sliceMs = FLUSH_SLICE_MS) {
  const corked = new Set<Socket>();
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const started = performance.now();
    for (const raw of corked) {
      corked.delete(raw);
      raw.uncork();
      if (performance.now() - started > sliceMs) break;
    }
    if (corked.size > 0) schedule();
  };
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(flush);
  };
  return {
    /** Corks `raw` until a coming turn's flush (at once if it is corked already). */
    cork(raw: Socket): void {
      if (corked.has(raw)) return;
      raw.cork();
      corked.add(raw);
      schedule();
    },
  };
}

export type Flusher = ReturnType<typeof createFlusher>;

/**
 * graphql-ws waits for each message's write to finish before it sends a subscription's next
 * message, so every event was one system call: 1,000 subscribers × 300 changes were 300,000
 * writes, the largest cost in the `subs` bench's profile. While the socket holds less than
 * COALESCE_BYTES unwritten, a send is reported done at once and the socket stays corked until
 * `flusher` writes it, so the messages of a turn leave in one write. Past the bound a send
 * waits for its write as before: a slow client still fills its bounded subscription queue and
 * is told how much it lost (`lagged`), and memory stays bounded.
 */
export function coalesceSends(socket: WebSocket, flusher: Flusher): void {
  const raw = (socket as unknown as { _socket?: Socket })._socket;
  if (!raw) return;
  const send = socket.send.bind(socket) as (data: unknown, cb?: (err?: Error) => void) => void;
  (socket as unknown as { send: typeof send }).send = (data, cb) => {
    flusher.cork(raw);
    if (cb && socket.bufferedAmount < COALESCE_BYTES) {
      // A failed write closes the socket, which ends its subscriptions: nothing is left to tell.
      send(data, () => {});
      queueMicrotask(() => cb());
      return;
    }
    send(data, cb);
  };
  // graphql-ws's keepalive pings each connection from its own timer; connections opened together
  // ping in one timer phase, a write each (~20 ms with 2,000 in the `subs` bench). Corked, the
  // pings leave through the flusher's bounded turns like any message.
  const ping = socket.ping.bind(socket) as (...args: unknown[]) => void;
  (socket as unknown as { ping: typeof ping }).ping = (...args) => {
    flusher.cork(raw);
    ping(...args);
  };
}
