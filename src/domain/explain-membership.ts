/**
 * Why a profile is or is not in an audience (or matches an expression): the JS evaluator's own
 * explanation (src/pql explain), with the stored membership beside it and, for an audience, the
 * definition version in force — the one a past transition recorded when `at` is its instant.
 */
import { statements } from '../db/statement.js';
import type { Store } from '../db/store.js';
import { type Explanation, explain } from '../pql/index.js';
import { audiencesByIds } from './audiences.js';
import { definitionVersionAt } from './definition-versions.js';
import { requireDefinition } from './definitions.js';
import { badInput } from './errors.js';
import { checkExpression } from './expressions.js';
import type { MembershipStatus } from './membership-statuses.js';
import { readProfileDocument } from './profile-documents.js';
import { assertIdentity, type IdentityInput } from './profile-ingest.js';
import { profileIdByIdentity } from './profiles.js';

const q = statements('explain-membership', {
  /** The newest transition of a profile in an audience at exactly an instant that names a version. */
  transitionVersion: {
    sqlite: `SELECT definition_version AS version FROM membership_history
      WHERE sandbox_id = ? AND profile_id = ? AND audience_id = ? AND at = ? AND definition_version IS NOT NULL
      ORDER BY id DESC LIMIT 1`,
    postgres: `SELECT definition_version AS version FROM membership_history
      WHERE sandbox_id = $1 AND profile_id = $2 AND audience_id = $3 AND at = $4 AND definition_version IS NOT NULL
      ORDER BY id DESC LIMIT 1`,
  },
});

export interface ExplainRequest {
  profileId?: number | null;
  identity?: IdentityInput | null;
  audienceId?: number | null;
  expression?: string | null;
  /** The evaluation instant (default: now). */
  at?: number | null;
}

export interface MembershipExplanation extends Explanation {
  /** The stored membership, when an audience was given (null: never a member). */
  storedStatus: MembershipStatus | null;
  /** Whether the verdict matches the stored membership; null without an audience. */
  agreesWithStored: boolean | null;
  /** The definition version explained, when an audience was given. */
  definitionVersion: number | null;
}

/** Explains one profile against an audience's definition or an expression; null when the profile is unknown. */
export async function explainMembership(
  conn: Store,
  sandboxId: number,
  request: ExplainRequest,
  now = Date.now(),
): Promise<MembershipExplanation | null> {
  if ((request.profileId == null) === (request.identity == null)) {
    throw badInput('Give either profile or identity', 'profile');
  }
  if ((request.audienceId == null) === (request.expression == null)) {
    throw badInput('Give either audienceId or expression', 'audienceId');
  }
  if (request.identity) assertIdentity(request.identity);
  const profileId = request.profileId ?? (await profileIdByIdentity(conn, sandboxId, request.identity!));
  if (profileId === undefined) return null;
  const at = request.at ?? now;
  const doc = await readProfileDocument(conn, sandboxId, profileId);
  if (doc === undefined) return null;

  let text: string;
  let audienceId: number | null = null;
  let definitionVersion: number | null = null;
  let selfAudienceId: number | undefined;
  if (request.audienceId != null) {
    const audience = (await audiencesByIds(conn, sandboxId, [request.audienceId])).get(request.audienceId);
    if (audience === undefined) return null;
    if (audience.definitionId == null) {
      throw badInput(
        `The audience "${audience.name}" is ${audience.origin}: it has no definition to explain`,
        'audienceId',
      );
    }
    const def = await requireDefinition(conn, sandboxId, audience.definitionId);
    audienceId = audience.id;
    selfAudienceId = audience.id;
    text = def.expressionText;
    definitionVersion = def.version;
    if (request.at != null) {
      // A transition at exactly `at` names the version that decided it; otherwise the one in force then.
      const decided = await transitionVersion(conn, sandboxId, profileId, audience.id, at);
      const version = await definitionVersionAt(
        conn,
        sandboxId,
        def.id,
        decided === undefined ? { at } : { version: decided },
      );
      if (version !== undefined) {
        text = version.expressionText;
        definitionVersion = decided ?? version.version;
      }
    }
  } else {
    text = request.expression!;
  }
  const { checked } = await checkExpression(
    conn,
    sandboxId,
    { format: 'PQL_TEXT', value: text },
    { definition: true, selfAudienceId },
  );
  const explanation = explain(checked, doc, { now: at, membershipStatus: (id) => doc.statuses.get(id) });
  const storedStatus = audienceId === null ? null : (doc.statuses.get(audienceId) ?? null);
  const member = storedStatus === 'REALIZED' || storedStatus === 'EXISTING';
  return {
    ...explanation,
    storedStatus,
    agreesWithStored: audienceId === null ? null : member === explanation.qualifies,
    definitionVersion,
  };
}

/** The definition version a transition of this profile recorded at exactly `at`, if there is one. */
async function transitionVersion(
  conn: Store,
  sandboxId: number,
  profileId: number,
  audienceId: number,
  at: number,
): Promise<number | undefined> {
  const row = await conn.get<{ version: number }>(q.transitionVersion, [sandboxId, profileId, audienceId, at]);
  return row?.version ?? undefined;
}
