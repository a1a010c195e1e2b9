/**
 * EXPORT schedules: their properties are a CreateExportJobInput as JSON (global ids, ISO
 * datetimes, enum names), read here into an ExportJobRequest and checked as createExportJob
 * checks it, so a schedule that saves is a schedule that can start.
 */
import type { Store } from '../../db/store.js';
import { parseDatetime } from '../document-validation.js';
import { badInput, notFound } from '../errors.js';
import { internalId } from '../ids.js';
import { MEMBERSHIP_STATUSES, type MembershipStatus } from '../membership-statuses.js';
import { registerScheduleType } from '../schedules/schedule-types.js';
import { EXPORT_FORMATS, type ExportFormat } from './datasets.js';
import {
  createExportJob,
  EXPORT_MODES,
  type ExportJobRequest,
  type ExportMode,
  validateExportRequest,
} from './export-job.js';

const FIELD = 'input.properties';

type Json = Record<string, unknown>;

function object(value: unknown, field: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw badInput(`${field} must be an object (a CreateExportJobInput)`, field);
  }
  return value as Json;
}

function optional<T>(value: unknown, field: string, read: (v: unknown) => T | undefined, what: string): T | null {
  if (value === undefined || value === null) return null;
  const read_ = read(value);
  if (read_ === undefined) throw badInput(`${field} must be ${what}`, field);
  return read_;
}

const asBoolean = (v: unknown) => (typeof v === 'boolean' ? v : undefined);
const asString = (v: unknown) => (typeof v === 'string' ? v : undefined);
const asTime = (v: unknown) => {
  if (typeof v !== 'string') return undefined;
  const parsed = parseDatetime(v);
  return parsed.ok ? parsed.ms : undefined;
};
const oneOf =
  <T extends string>(values: readonly T[]) =>
  (v: unknown) =>
    typeof v === 'string' && (values as readonly string[]).includes(v) ? (v as T) : undefined;

function globalId(value: unknown, type: string, field: string): number {
  if (typeof value !== 'string') throw badInput(`${field} must be a ${type} id`, field);
  const id = internalId(value, type);
  if (id === undefined) throw notFound(`No ${type} with id "${value}" in this sandbox (${field})`, value);
  return id;
}

/** The properties of an EXPORT schedule as the request createExportJob takes. */
export function exportRequestFromProperties(properties: unknown): ExportJobRequest {
  const p = object(properties, FIELD);
  if (!Array.isArray(p.audiences) || p.audiences.length === 0) {
    throw badInput(`${FIELD}.audiences must list at least one { audienceId }`, `${FIELD}.audiences`);
  }
  const audiences = p.audiences.map((a, i) => {
    const field = `${FIELD}.audiences.${i}`;
    const entry = object(a, field);
    const statuses = optional(
      entry.statuses,
      `${field}.statuses`,
      (v) =>
        Array.isArray(v) && v.every((s) => oneOf(MEMBERSHIP_STATUSES)(s)) ? (v as MembershipStatus[]) : undefined,
      `a list of ${MEMBERSHIP_STATUSES.join(', ')}`,
    );
    return { audienceId: globalId(entry.audienceId, 'Audience', `${field}.audienceId`), statuses };
  });
  const fields = optional(
    p.fields,
    `${FIELD}.fields`,
    (v) => (Array.isArray(v) && v.every((f) => typeof f === 'string') ? (v as string[]) : undefined),
    'a list of attribute paths',
  );
  const d = object(p.destination, `${FIELD}.destination`);
  return {
    audiences,
    fields,
    fromIngestTimestamp: optional(
      p.fromIngestTimestamp,
      `${FIELD}.fromIngestTimestamp`,
      asTime,
      'an ISO-8601 datetime',
    ),
    emptyAudienceFilter: optional(p.emptyAudienceFilter, `${FIELD}.emptyAudienceFilter`, asBoolean, 'true or false'),
    mode: optional<ExportMode>(p.mode, `${FIELD}.mode`, oneOf(EXPORT_MODES), EXPORT_MODES.join(' or ')),
    changesSince: optional(p.changesSince, `${FIELD}.changesSince`, asTime, 'an ISO-8601 datetime'),
    at: optional(p.at, `${FIELD}.at`, asTime, 'an ISO-8601 datetime'),
    evaluateFirst: optional(p.evaluateFirst, `${FIELD}.evaluateFirst`, asBoolean, 'true or false'),
    destination: {
      datasetId: d.datasetId == null ? null : globalId(d.datasetId, 'Dataset', `${FIELD}.destination.datasetId`),
      datasetName: optional(d.datasetName, `${FIELD}.destination.datasetName`, asString, 'a string'),
      format:
        optional<ExportFormat>(
          d.format,
          `${FIELD}.destination.format`,
          oneOf(EXPORT_FORMATS),
          EXPORT_FORMATS.join(', '),
        ) ??
        (() => {
          throw badInput(
            `${FIELD}.destination.format is required (${EXPORT_FORMATS.join(', ')})`,
            `${FIELD}.destination.format`,
          );
        })(),
      audiencePerFile: optional(d.audiencePerFile, `${FIELD}.destination.audiencePerFile`, asBoolean, 'true or false'),
    },
  };
}

async function checked(conn: Store, sandboxId: number, properties: unknown): Promise<ExportJobRequest> {
  const request = exportRequestFromProperties(properties);
  await validateExportRequest(conn, sandboxId, request);
  return request;
}

registerScheduleType('EXPORT', {
  async validate(conn, sandboxId, properties) {
    return { audienceIds: (await checked(conn, sandboxId, properties)).audiences.map((a) => a.audienceId) };
  },
  async start(app, sandboxId, properties, options) {
    return createExportJob(app, sandboxId, await checked(app.conn, sandboxId, properties), options);
  },
});
