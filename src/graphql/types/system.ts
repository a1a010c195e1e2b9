import { builder } from '../builder.js';

builder.subscriptionField('heartbeat', (t) =>
  t.field({
    type: 'DateTime',
    description:
      'The server time every intervalMs (default 1000), count times (default: until the client stops). For checking a subscription transport.',
    args: {
      intervalMs: t.arg.int({ defaultValue: 1000, description: 'Milliseconds between beats (10 to 60,000).' }),
      count: t.arg.int({ description: 'How many beats before completing (default: no end).' }),
    },
    subscribe: async function* (_r, args, ctx) {
      const interval = Math.min(60_000, Math.max(10, args.intervalMs ?? 1000));
      for (let i = 0; args.count == null || i < args.count; i++) {
        if (i > 0) await new Promise((resolve) => setTimeout(resolve, interval));
        if (ctx.signal?.aborted) return;
        yield Date.now();
      }
    },
    resolve: (time) => time,
  }),
);
