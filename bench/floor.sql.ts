/**
 * The floor of the `pql` bench (docs/performance.md): for each reference definition, the best
 * plain SQLite query we could write by hand against the schema for exactly the same set of
 * profile ids. Literal JSON paths and values, direct `ts`/`event_type` column comparisons,
 * and whichever access path measured fastest at 100 k profiles × 10 events: a grouped range
 * scan of the (sandbox_id, event_type, ts) index when an event condition is selective, a
 * semi-join from the rarest event type for CHAIN, compound SELECTs over memberships for
 * inSegment. Every query selects one column, `id`, the profile id; the bench counts the rows.
 *
 * Each floor must mean what the PQL means on any data the schema admits (not only on the
 * seeded data), so the bench's equality check compares two implementations of one set. Where
 * a shortcut relies on an argument, the comment says which.
 */
import { toCanonicalIso } from '../src/pql/runtime/index.js';
// The exact bound of age(t) >= n, by binary search over the runtime's own ageInYears (Feb 29 included).
import { latestWithAge } from '../src/pql/sql/time.js';

export interface FloorContext {
  sandboxId: number;
  /** The evaluation instant, the same one the compiled SQL gets. */
  now: number;
  /** The audience id the bench materialised for a reference definition name. */
  audience(name: string): number;
}

export interface FloorQuery {
  sql: string;
  params: unknown[];
}

const DAY = 86_400_000;
const CURRENT = "('REALIZED', 'EXISTING')";

/** ISO text of an instant: document datetimes are canonical 24-character ISO, so text order is time order. */
const iso = (ms: number): string => toCanonicalIso(ms);

/** A condition on the attribute document: one pass over the sandbox's profiles. */
function profiles(where: string, params: unknown[] = []): (c: FloorContext) => FloorQuery {
  return (c) => ({
    sql: `SELECT id FROM profiles WHERE sandbox_id = ? AND ${where}`,
    params: [c.sandboxId, ...params],
  });
}

export const FLOORS: Readonly<Record<string, (c: FloorContext) => FloorQuery>> = {
  nordics: profiles("json_extract(attributes, '$.homeAddress.countryCode') IN ('SE', 'NO')"),

  'gold-mid-points': profiles(
    "json_extract(attributes, '$.loyalty.tier') = 'gold' AND json_extract(attributes, '$.loyalty.points') >= 200 AND json_extract(attributes, '$.loyalty.points') < 5000",
  ),

  // A JSON true reads as integer 1; the category list is searched only for opted-in non-US/CA rows.
  'outdoor-optin': profiles(
    "json_extract(attributes, '$.consents.marketing.email') = 1 AND json_extract(attributes, '$.homeAddress.countryCode') NOT IN ('US', 'CA') AND EXISTS (SELECT 1 FROM json_each(attributes, '$.preferences.categories') WHERE value = 'outdoor')",
  ),

  // SQLite's LIKE folds ASCII case only. That is exact here: the only non-ASCII characters whose
  // toLowerCase() contains ASCII are U+0130 İ ("i̇") and U+212A KELVIN SIGN ("k"), and the needles
  // "so" and "son" have neither "i" nor "k".
  'so-son-names': profiles(
    "(json_extract(attributes, '$.person.name.firstName') LIKE 'so%' OR json_extract(attributes, '$.person.name.lastName') LIKE '%son%')",
  ),

  // like "%o%" is containment; the RE2 pattern `7@example\.com$` is a literal suffix ($ is end of text).
  'o-city-sevens': profiles(
    "instr(json_extract(attributes, '$.homeAddress.city'), 'o') > 0 AND json_extract(attributes, '$.personalEmail.address') GLOB '*7@example.com'",
  ),

  'age-30-44': (c) =>
    profiles("json_extract(attributes, '$.person.birthDate') BETWEEN ? AND ?", [
      // age < 45 is "born after the latest 45-year-old", age >= 30 "at or before the latest 30-year-old".
      iso(latestWithAge(c.now, 45) + 1),
      iso(latestWithAge(c.now, 30)),
    ])(c),

  'birthday-or-new': (c) =>
    profiles(
      "(substr(json_extract(attributes, '$.person.birthDate'), 6, 2) = ? OR json_extract(attributes, '$.loyalty.joinDate') BETWEEN ? AND ?)",
      [String(new Date(c.now).getUTCMonth() + 1).padStart(2, '0'), iso(c.now - 90 * DAY), iso(c.now)],
    )(c),

  // Selective event conditions: one range of the (sandbox_id, event_type, ts) index, grouped.
  'buyers-30d': (c) => ({
    sql: "SELECT profile_id AS id FROM events WHERE sandbox_id = ? AND event_type = 'commerce.purchases' AND ts BETWEEN ? AND ? GROUP BY profile_id HAVING count(*) >= 2",
    params: [c.sandboxId, c.now - 30 * DAY, c.now],
  }),

  'browsers-7d': (c) => ({
    sql: "SELECT profile_id AS id FROM events WHERE sandbox_id = ? AND event_type = 'web.webpagedetails.pageViews' AND ts BETWEEN ? AND ? GROUP BY profile_id HAVING count(*) >= 3",
    params: [c.sandboxId, c.now - 7 * DAY, c.now],
  }),

  // total() is the sum PQL defines (0.0 when none, compensated); > 100 needs at least one purchase.
  // Without a window, a type with ~7 % of all events is cheaper to find by one sequential pass
  // over the table than by index range plus a random row lookup per event.
  'big-spenders': (c) => ({
    sql: "SELECT profile_id AS id FROM events NOT INDEXED WHERE sandbox_id = ? AND event_type = 'commerce.purchases' GROUP BY profile_id HAVING total(json_extract(payload, '$.commerce.order.priceTotal')) > 100",
    params: [c.sandboxId],
  }),

  'high-basket-60d': (c) => ({
    sql: "SELECT profile_id AS id FROM events WHERE sandbox_id = ? AND event_type = 'commerce.purchases' AND ts BETWEEN ? AND ? GROUP BY profile_id HAVING avg(json_extract(payload, '$.commerce.order.priceTotal')) >= 50",
    params: [c.sandboxId, c.now - 60 * DAY, c.now],
  }),

  // A payload condition that is not tied to one event type reads every event once: a
  // sequential scan of the table (NOT INDEXED: the planner would walk an index and fetch rows
  // in random order) beats one index probe plus row lookups per profile.
  'mobile-checkout-or-campaign': (c) => ({
    sql: "SELECT DISTINCT profile_id AS id FROM events NOT INDEXED WHERE sandbox_id = ? AND json_extract(payload, '$.channel') = 'mobile' AND (event_type = 'commerce.checkouts' OR json_extract(payload, '$.marketing.campaignId') IN ('CMP-1', 'CMP-2', 'CMP-3'))",
    params: [c.sandboxId],
  }),

  'shoes-in-cart': (c) => ({
    sql: "SELECT DISTINCT profile_id AS id FROM events NOT INDEXED WHERE sandbox_id = ? AND event_type = 'commerce.productListAdds' AND EXISTS (SELECT 1 FROM jsonb_each(payload, '$.productListItems') AS j WHERE j.value ->> '$.category' = 'shoes')",
    params: [c.sandboxId],
  }),

  'electronics-buyers': (c) => ({
    sql: "SELECT DISTINCT profile_id AS id FROM events WHERE sandbox_id = ? AND event_type = 'commerce.purchases' AND EXISTS (SELECT 1 FROM jsonb_each(payload, '$.productListItems') AS j WHERE j.value ->> '$.category' = 'electronics' AND j.value ->> '$.priceTotal' > 30)",
    params: [c.sandboxId],
  }),

  // Strictly increasing times make the events distinct; `<= 14 days after A` with `> A` is
  // (A, A + 14 d]. Existence does not depend on the order the steps are searched in, so the
  // nesting starts at the rarest step (purchases, which must also fall after now - 90 d) and
  // looks backwards; each level is one covering range of the (profile_id, event_type, ts) index.
  'view-add-buy': (c) => ({
    sql: `SELECT p.id FROM profiles AS p
      WHERE p.sandbox_id = ? AND EXISTS (SELECT 1 FROM events AS c
        WHERE c.profile_id = p.id AND c.event_type = 'commerce.purchases' AND c.ts > ?
          AND EXISTS (SELECT 1 FROM events AS b
            WHERE b.profile_id = p.id AND b.event_type = 'commerce.productListAdds' AND b.ts < c.ts AND b.ts >= c.ts - ${14 * DAY}
              AND EXISTS (SELECT 1 FROM events AS a
                WHERE a.profile_id = p.id AND a.event_type = 'commerce.productViews' AND a.ts < b.ts AND a.ts >= b.ts - ${14 * DAY}
                  AND a.ts BETWEEN ? AND ?)))`,
    params: [c.sandboxId, c.now - 90 * DAY, c.now - 90 * DAY, c.now],
  }),

  // Purchases first (rarer, and the index covers them); the payload of an add is read only
  // for adds in the 7 days before a purchase.
  'web-add-then-buy': (c) => ({
    sql: `SELECT p.id FROM profiles AS p
      WHERE p.sandbox_id = ? AND EXISTS (SELECT 1 FROM events AS b
        WHERE b.profile_id = p.id AND b.event_type = 'commerce.purchases'
          AND EXISTS (SELECT 1 FROM events AS a
            WHERE a.profile_id = p.id AND a.event_type = 'commerce.productListAdds' AND a.ts < b.ts AND a.ts >= b.ts - ${7 * DAY}
              AND json_extract(a.payload, '$.channel') = 'web'))`,
    params: [c.sandboxId],
  }),

  'nordic-buyers': (c) => ({
    sql: `SELECT m.profile_id AS id FROM memberships AS m
      WHERE m.audience_id = ? AND m.status IN ${CURRENT}
        AND EXISTS (SELECT 1 FROM events AS e WHERE e.profile_id = m.profile_id AND e.event_type = 'commerce.purchases')`,
    params: [c.audience('nordics')],
  }),

  // A or (B and not C) as set operations on the audiences' ranges of the memberships' key.
  'vip-mix': (c) => ({
    sql: `SELECT profile_id AS id FROM memberships WHERE audience_id = ? AND status IN ${CURRENT}
      UNION
      SELECT profile_id FROM (
        SELECT profile_id FROM memberships WHERE audience_id = ? AND status IN ${CURRENT}
        EXCEPT
        SELECT profile_id FROM memberships WHERE audience_id = ? AND status IN ${CURRENT})`,
    params: [c.audience('gold-mid-points'), c.audience('big-spenders'), c.audience('outdoor-optin')],
  }),

  // S = 0 (no purchases) is not > 50, so only profiles with purchases can qualify.
  'mid-spend': (c) => ({
    sql: "SELECT profile_id AS id FROM events NOT INDEXED WHERE sandbox_id = ? AND event_type = 'commerce.purchases' GROUP BY profile_id HAVING total(json_extract(payload, '$.commerce.order.priceTotal')) > 50 AND total(json_extract(payload, '$.commerce.order.priceTotal')) < 500",
    params: [c.sandboxId],
  }),

  // The forms of issue 18 mean what an existing reference definition means, so their floors are
  // that definition's: an array as a condition is non-empty, `select` as a definition is
  // `exists`, a where before the next binding filters its items, the lambda names the profile.
  'shoes-added-nonempty': (c) => FLOORS['shoes-in-cart']!(c),
  'electronics-select': (c) => FLOORS['electronics-buyers']!(c),
  'electronics-item-bindings': (c) => FLOORS['electronics-buyers']!(c),
  'gold-mid-points-lambda': (c) => FLOORS['gold-mid-points']!(c),

  // groupBy(channel).keys() are the distinct present channels of the purchases; channel is a
  // string field, and count(DISTINCT) skips NULL (no channel) and compares text bytewise, as
  // distinct() does.
  'multi-channel-buyers': (c) => ({
    sql: "SELECT profile_id AS id FROM events WHERE sandbox_id = ? AND event_type = 'commerce.purchases' GROUP BY profile_id HAVING count(DISTINCT json_extract(payload, '$.channel')) >= 2",
    params: [c.sandboxId],
  }),

  // `a.map(e => e.x).sum()` is `a.sum(x)`, and there is one group per key: the same sets as
  // big-spenders and multi-channel-buyers.
  'big-spenders-lambda': (c) => FLOORS['big-spenders']!(c),
  'multi-channel-groups': (c) => FLOORS['multi-channel-buyers']!(c),

  // points × 2 >= 1000 is points >= 500: one extraction of points per row.
  'tier-weighted-points': profiles(
    "json_extract(attributes, '$.loyalty.points') >= CASE WHEN json_extract(attributes, '$.loyalty.tier') IN ('gold', 'platinum') THEN 500 ELSE 1000 END",
  ),
};
