import {
  type AudienceSizePoint,
  listAudienceSizeHistory,
  watchAudienceSizeChanges,
} from '../../domain/size-history.js';
import { builder } from '../builder.js';
import { connectionComplexity, toConnection } from '../connection.js';
import { decodeId } from '../ids.js';
import { AudienceRef } from './refs.js';
import { SegmentJobRef } from './segment-job.js';

const AudienceSizeType = builder.objectRef<AudienceSizePoint>('AudienceSize').implement({
  description: "An audience's size after one evaluation.",
  fields: (t) => ({
    at: t.field({ type: 'DateTime', description: "The evaluation's instant (the job's now).", resolve: (p) => p.at }),
    size: t.exposeInt('size', { description: 'Members (REALIZED or EXISTING) after the evaluation.' }),
    before: t.exposeInt('before', { description: 'Members before it.' }),
    job: t.field({
      type: SegmentJobRef,
      nullable: true,
      description: 'The segment job that evaluated it; null when the job has been deleted.',
      resolve: (p, _a, ctx) => ctx.loaders.segmentJob.load(p.jobId),
    }),
  }),
});

builder.objectField(AudienceRef, 'sizeHistory', (t) =>
  t.connection(
    {
      type: AudienceSizeType,
      description: 'Its size after each segment job that evaluated it, newest first (to plot it).',
      complexity: connectionComplexity,
      resolve: async (a, args, ctx) =>
        toConnection(await listAudienceSizeHistory(ctx.conn, ctx.sandbox.id, a.id, args)),
    },
    { name: 'AudienceSizeConnection', description: 'A page of audience sizes.' },
    { name: 'AudienceSizeEdge', description: 'An audience size in a page, with its cursor.' },
  ),
);

const AudienceSizeChangeType = builder.objectRef<AudienceSizePoint>('AudienceSizeChange').implement({
  description: "A segment job moved an audience's size by more than the fraction asked for.",
  fields: (t) => ({
    audience: t.field({
      type: AudienceRef,
      nullable: true,
      description: 'The audience; null when it has been deleted since.',
      resolve: (p, _a, ctx) => ctx.loaders.audience.load(p.audienceId),
    }),
    before: t.exposeInt('before', { description: 'Its size before the job.' }),
    after: t.exposeInt('size', { description: 'Its size after the job.' }),
    at: t.field({ type: 'DateTime', description: "The job's evaluation instant.", resolve: (p) => p.at }),
    job: t.field({
      type: SegmentJobRef,
      nullable: true,
      description: 'The segment job; null when it has been deleted since.',
      resolve: (p, _a, ctx) => ctx.loaders.segmentJob.load(p.jobId),
    }),
  }),
});

builder.subscriptionField('audienceSizeChanged', (t) =>
  t.field({
    type: AudienceSizeChangeType,
    description:
      "An event each time a segment job, once committed, has moved an audience's size by more than minChangeFraction.",
    args: {
      audienceIds: t.arg.idList({ description: 'Only these audiences (default: every audience of the sandbox).' }),
      minChangeFraction: t.arg.float({
        defaultValue: 0.1,
        description:
          'The smallest move reported, as a fraction of the size before (0.1 = 10 %); from 0 any growth counts.',
      }),
    },
    subscribe: (_r, args, ctx) =>
      watchAudienceSizeChanges(
        ctx.app,
        ctx.sandbox.id,
        {
          // An id that is no audience's matches nothing.
          audienceIds: args.audienceIds?.map((id) => decodeId(String(id), 'Audience') ?? -1),
          minChangeFraction: args.minChangeFraction ?? 0.1,
        },
        ctx.signal,
      ),
    resolve: (p) => p,
  }),
);
