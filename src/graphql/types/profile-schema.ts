import { definitionsUsingField } from '../../domain/definitions.js';
import { FIELD_CLASSES, type SchemaField, schemaFieldsOf, updateProfileSchema } from '../../domain/profile-schema.js';
import { builder } from '../builder.js';
import { enumFromDomain } from '../enums.js';

const FieldClassEnum = enumFromDomain('FieldClass', 'Which document a field belongs to.', FIELD_CLASSES, {
  profile: 'The profile attribute document.',
  event: 'The experience event document.',
});

export const SchemaFieldType = builder.objectRef<SchemaField>('SchemaField').implement({
  description: 'One typed path of the profile or event document.',
  fields: (t) => ({
    class: t.field({ type: FieldClassEnum, description: 'Which document it belongs to.', resolve: (f) => f.class }),
    path: t.exposeString('path', { description: 'Its dotted path, e.g. homeAddress.countryCode.' }),
    type: t.exposeString('type', { description: 'string, number, boolean, datetime, object, array<T> or map<T>.' }),
    description: t.exposeString('description', { nullable: true, description: 'What it holds, in words.' }),
  }),
});

interface SchemaView {
  fields: SchemaField[];
}

const ProfileSchemaType = builder.objectRef<SchemaView>('ProfileSchema').implement({
  description: 'The field catalogue that ingestion validates against and PQL is checked against.',
  fields: (t) => ({
    name: t.string({ description: 'The name of the schema.', resolve: () => '_xdm.context.profile' }),
    fields: t.field({
      type: [SchemaFieldType],
      description: 'Every field, profile and event.',
      resolve: (s) => s.fields,
    }),
    profileFields: t.field({
      type: [SchemaFieldType],
      description: 'The fields of the profile document.',
      resolve: (s) => s.fields.filter((f) => f.class === 'profile'),
    }),
    eventFields: t.field({
      type: [SchemaFieldType],
      description: 'The fields of the event document.',
      resolve: (s) => s.fields.filter((f) => f.class === 'event'),
    }),
  }),
});

const SchemaFieldInput = builder.inputType('SchemaFieldInput', {
  description: 'A field to add to the profile schema (or to re-describe).',
  fields: (t) => ({
    class: t.field({ type: FieldClassEnum, required: true, description: 'Which document it belongs to.' }),
    path: t.string({
      required: true,
      description: 'Its dotted path, e.g. product.price; a built-in path only with its built-in type.',
    }),
    type: t.string({
      required: true,
      description: 'string, number, boolean, datetime, object, array<T> or map<T>.',
    }),
    description: t.string({ description: 'What it holds, in words.' }),
  }),
});

const ProfileSchemaInput = builder.inputType('ProfileSchemaInput', {
  description: 'Fields to add to the profile schema.',
  fields: (t) => ({
    fields: t.field({ type: [SchemaFieldInput], required: true, description: 'The fields, at least one.' }),
  }),
});

builder.queryField('profileSchema', (t) =>
  t.field({
    type: ProfileSchemaType,
    description: "The sandbox's profile schema: the fields ingestion and PQL know.",
    resolve: async (_r, _a, ctx) => ({ fields: await schemaFieldsOf(ctx.conn, ctx.sandbox.id) }),
  }),
);

builder.mutationField('updateProfileSchema', (t) =>
  t.field({
    type: ProfileSchemaType,
    nullable: true,
    description:
      'Adds fields (or re-describes them); returns the whole schema. Changing the type of a field that definitions use is a CONFLICT.',
    args: { input: t.arg({ type: ProfileSchemaInput, required: true, description: 'The fields to add.' }) },
    // Changes a sandbox's shape: admin only, instead of the mutation type's `write`.
    authScopes: { admin: true },
    skipTypeScopes: true,
    resolve: async (_r, args, ctx) => ({
      fields: await updateProfileSchema(ctx.conn, ctx.sandbox.id, args.input.fields, (cls, path) =>
        definitionsUsingField(ctx.conn, ctx.sandbox.id, cls, path),
      ),
    }),
  }),
);
