import { builder } from './builder.js';

/**
 * A GraphQL enum built from a domain vocabulary (`const X = [...] as const`), so a value added in
 * the domain appears in the API; the descriptions record is keyed by the same values, so the
 * compiler asks for the new value's description too. Values are named in UPPER_CASE in GraphQL
 * and keep their domain spelling inside (FieldClass `profile` is `PROFILE` on the wire).
 */
export function enumFromDomain<const V extends string>(
  name: string,
  description: string,
  values: readonly V[],
  descriptions: Record<V, string>,
) {
  const config = Object.fromEntries(
    values.map((value) => [value.toUpperCase(), { value, description: descriptions[value] }]),
  ) as Record<Uppercase<V>, { value: V; description: string }>;
  return builder.enumType(name, { description, values: config });
}
