import { definitionsUsingField } from '../../domain/definitions.js';
import { type FieldClass, type SchemaField, schemaFieldsOf, updateProfileSchema } from '../../domain/profile-schema.js';
import { builder } from '../builder.js';

const FieldClassEnum = builder.enumType('FieldClass', {
  description: 'Which document a field belongs to.',
  values: { PROFILE: { value: 'profile' }, EVENT: { value: 'event' } } as const,
});

const SchemaFieldType = builder.objectRef<SchemaField>('SchemaField').implement({
  description: 'One typed path of the profile or event document.',
  fields: (t) => ({
    class: t.field({ type: FieldClassEnum, resolve: (f) => f.class }),
    path: t.exposeString('path'),
    type: t.exposeString('type', { description: 'string, number, boolean, datetime, object, array<T> or map<T>.' }),
    description: t.exposeString('description', { nullable: true }),
  }),
});

interface SchemaView {
  fields: SchemaField[];
}

const ProfileSchemaType = builder.objectRef<SchemaView>('ProfileSchema').implement({
  description: 'The field catalogue that ingestion validates against and PQL is checked against.',
  fields: (t) => ({
    name: t.string({ resolve: () => '_xdm.context.profile' }),
    fields: t.field({ type: [SchemaFieldType], resolve: (s) => s.fields }),
    profileFields: t.field({ type: [SchemaFieldType], resolve: (s) => s.fields.filter((f) => f.class === 'profile') }),
    eventFields: t.field({ type: [SchemaFieldType], resolve: (s) => s.fields.filter((f) => f.class === 'event') }),
  }),
});

const SchemaFieldInput = builder.inputType('SchemaFieldInput', {
  fields: (t) => ({
    class: t.field({ type: FieldClassEnum, required: true }),
    path: t.string({ required: true, description: 'New fields go under "_tenant.".' }),
    type: t.string({ required: true }),
    description: t.string(),
  }),
});

const ProfileSchemaInput = builder.inputType('ProfileSchemaInput', {
  fields: (t) => ({ fields: t.field({ type: [SchemaFieldInput], required: true }) }),
});

builder.queryField('profileSchema', (t) =>
  t.field({
    type: ProfileSchemaType,
    resolve: (_r, _a, ctx) => ({ fields: schemaFieldsOf(ctx.conn, ctx.sandbox.id) }),
  }),
);

builder.mutationField('updateProfileSchema', (t) =>
  t.field({
    type: ProfileSchemaType,
    description: 'Adds fields (or re-describes them). Changing the type of a field that definitions use is a CONFLICT.',
    args: { input: t.arg({ type: ProfileSchemaInput, required: true }) },
    // Changes a sandbox's shape: admin only, instead of the mutation type's `write`.
    authScopes: { admin: true },
    skipTypeScopes: true,
    resolve: (_r, args, ctx) => ({
      fields: updateProfileSchema(
        ctx.conn,
        ctx.sandbox.id,
        args.input.fields.map((f) => ({ ...f, class: f.class as FieldClass })),
        (cls, path) => definitionsUsingField(ctx.conn, ctx.sandbox.id, cls, path),
      ),
    }),
  }),
);
