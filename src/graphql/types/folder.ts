import { createFolder, folderPath } from '../../domain/folders.js';
import { builder } from '../builder.js';
import { requireId } from '../ids.js';
import { FolderRef } from './refs.js';

builder.node(FolderRef, {
  description: 'A folder of the audience taxonomy; folders nest.',
  id: { resolve: (f) => f.id },
  loadMany: async (ids, ctx) => {
    const folders = await ctx.loaders.folders();
    return ids.map((id) => folders.get(Number(id)) ?? null);
  },
  fields: (t) => ({
    name: t.exposeString('name', { description: 'Its name, unique among its siblings.' }),
    path: t.string({
      description: 'Names from the root, e.g. "/Marketing/Nordics".',
      resolve: async (f, _a, ctx) => folderPath(await ctx.loaders.folders(), f.id),
    }),
    parent: t.field({
      type: FolderRef,
      nullable: true,
      description: 'The folder it sits in; null at the root.',
      resolve: async (f, _a, ctx) =>
        f.parentId == null ? null : ((await ctx.loaders.folders()).get(f.parentId) ?? null),
    }),
    children: t.field({
      type: [FolderRef],
      description: 'The folders directly inside it.',
      resolve: async (f, _a, ctx) => [...(await ctx.loaders.folders()).values()].filter((c) => c.parentId === f.id),
    }),
    createdAt: t.field({ type: 'DateTime', description: 'When it was made.', resolve: (f) => f.createdAt }),
  }),
});

const CreateFolderInput = builder.inputType('CreateFolderInput', {
  description: 'A new folder.',
  fields: (t) => ({
    name: t.string({ required: true, description: 'Its name, unique among its siblings.' }),
    parentId: t.id({ description: 'The folder to make it in (default: the root).' }),
  }),
});

builder.queryField('folders', (t) =>
  t.field({
    type: [FolderRef],
    description: 'Every folder of the sandbox.',
    resolve: async (_r, _a, ctx) => [...(await ctx.loaders.folders()).values()],
  }),
);

builder.mutationField('createFolder', (t) =>
  t.field({
    type: FolderRef,
    nullable: true,
    description: 'Makes a folder of the audience taxonomy; returns it.',
    args: { input: t.arg({ type: CreateFolderInput, required: true, description: 'The new folder.' }) },
    resolve: (_r, { input }, ctx) =>
      createFolder(ctx.conn, ctx.sandbox.id, {
        name: input.name,
        parentId: input.parentId == null ? null : requireId(input.parentId, 'Folder'),
      }),
  }),
);
