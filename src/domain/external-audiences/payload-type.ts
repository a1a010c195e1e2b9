/**
 * How PQL sees an external audience's rows: `inSegment("…").payload.<field>` has the type of the
 * field as the audience declared it (the identity column is how the row found its profile, not
 * part of the payload).
 */
import type { ObjectType, PqlType } from '../../pql/index.js';

const PQL_TYPES: Readonly<Record<string, PqlType>> = {
  STRING: { kind: 'string' },
  NUMBER: { kind: 'number' },
  BOOLEAN: { kind: 'boolean' },
  DATE: { kind: 'datetime' },
};

/** The payload type of an audience whose `fields` column (JSON) and identity field are given. */
export function payloadType(fieldsJson: string, identityField: string): ObjectType {
  const fields: Record<string, PqlType> = {};
  for (const f of JSON.parse(fieldsJson) as { name: string; type: string }[]) {
    const type = PQL_TYPES[f.type];
    if (f.name !== identityField && type) fields[f.name] = type;
  }
  return { kind: 'object', fields };
}
