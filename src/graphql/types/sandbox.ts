import { createSandbox, type Sandbox } from '../../domain/sandboxes.js';
import { builder } from '../builder.js';

const SandboxType = builder.objectRef<Sandbox>('Sandbox').implement({
  description:
    'An isolated copy of profiles, schema, definitions, audiences and jobs; chosen per request by x-sandbox-name.',
  fields: (t) => ({
    name: t.exposeString('name', { description: 'Its name, as sent in x-sandbox-name.' }),
    createdAt: t.field({ type: 'DateTime', description: 'When it was made.', resolve: (s) => s.createdAt }),
  }),
});

builder.queryField('sandbox', (t) =>
  t.field({
    type: SandboxType,
    description: 'The sandbox this request runs in.',
    resolve: (_r, _a, ctx) => ctx.sandbox,
  }),
);

builder.mutationField('createSandbox', (t) =>
  t.field({
    type: SandboxType,
    nullable: true,
    description: 'Makes a new, empty sandbox with the default profile schema; returns it. Names: [a-z0-9-]{1,64}.',
    args: { name: t.arg.string({ required: true, description: 'Its name, [a-z0-9-]{1,64}.' }) },
    // Changes a sandbox's shape: admin only, instead of the mutation type's `write`.
    authScopes: { admin: true },
    skipTypeScopes: true,
    resolve: (_r, args, ctx) => createSandbox(ctx.conn, args.name),
  }),
);
