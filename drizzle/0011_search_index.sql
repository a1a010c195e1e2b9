-- Custom SQL (drizzle-kit cannot express FTS5 tables, views or triggers): the full-text index of
-- audiences, segment definitions and schema fields. Triggers on the source tables rewrite a row's
-- search document in the same transaction as the change, whatever code path makes it, so a
-- mutation's result is searchable when it returns and a deleted entity leaves the index with it.
-- segql_global_id() is registered on every connection by src/db/index.ts. No OR IGNORE inside: an
-- upsert's conflict policy would override it (schema_fields is written by INSERT … ON CONFLICT).
CREATE VIRTUAL TABLE `search_index` USING fts5(
  name, description, gid, external_id, labels, folder, namespace, expression, path, type,
  content = 'search_documents', content_rowid = 'id',
  tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3'
);--> statement-breakpoint
CREATE VIEW `search_folder_paths` AS
  WITH RECURSIVE p(id, path) AS (
    SELECT id, '/' || name FROM folders WHERE parent_id IS NULL
    UNION ALL
    SELECT f.id, p.path || '/' || f.name FROM folders f JOIN p ON f.parent_id = p.id
  )
  SELECT id, path FROM p;--> statement-breakpoint
CREATE VIEW `search_audience_documents` AS
  SELECT a.sandbox_id AS sandbox_id, 'AUDIENCE' AS kind, CAST(a.id AS TEXT) AS entity_key, a.name AS name,
    a.description AS description, segql_global_id('Audience', a.id) AS gid, NULL AS external_id,
    (SELECT group_concat(value, ' ') FROM json_each(a.labels)) AS labels,
    (SELECT fp.path FROM search_folder_paths fp WHERE fp.id = a.folder_id) AS folder,
    a.namespace AS namespace, d.expression_text AS expression, NULL AS path, NULL AS type, a.id AS audience_id
  FROM audiences a LEFT JOIN segment_definitions d ON d.id = a.definition_id;--> statement-breakpoint
CREATE VIEW `search_definition_documents` AS
  SELECT d.sandbox_id AS sandbox_id, 'DEFINITION' AS kind, CAST(d.id AS TEXT) AS entity_key, d.name AS name,
    d.description AS description, segql_global_id('SegmentDefinition', d.id) AS gid, NULL AS external_id,
    (SELECT group_concat(value, ' ') FROM json_each(a.labels)) AS labels,
    (SELECT fp.path FROM search_folder_paths fp WHERE fp.id = a.folder_id) AS folder,
    coalesce(a.namespace, 'segql') AS namespace, d.expression_text AS expression, NULL AS path, NULL AS type,
    d.id AS definition_id
  FROM segment_definitions d LEFT JOIN audiences a ON a.id = d.audience_id;--> statement-breakpoint
CREATE VIEW `search_field_documents` AS
  SELECT sandbox_id, 'FIELD' AS kind, class || ':' || path AS entity_key, path AS name, description,
    NULL AS gid, NULL AS external_id, NULL AS labels, NULL AS folder, 'schema' AS namespace, NULL AS expression,
    path, type
  FROM schema_fields;--> statement-breakpoint
CREATE TRIGGER `search_documents_insert` AFTER INSERT ON `search_documents` BEGIN
  INSERT INTO search_index (rowid, name, description, gid, external_id, labels, folder, namespace, expression, path, type) VALUES (new.id, new.name, new.description, new.gid, new.external_id, new.labels, new.folder, new.namespace, new.expression, new.path, new.type);
  INSERT INTO search_revisions (sandbox_id, revision) SELECT new.sandbox_id, 0 WHERE NOT EXISTS (SELECT 1 FROM search_revisions WHERE sandbox_id = new.sandbox_id);
  UPDATE search_revisions SET revision = revision + 1 WHERE sandbox_id = new.sandbox_id;
END;--> statement-breakpoint
CREATE TRIGGER `search_documents_delete` AFTER DELETE ON `search_documents` BEGIN
  INSERT INTO search_index (search_index, rowid, name, description, gid, external_id, labels, folder, namespace, expression, path, type) VALUES ('delete', old.id, old.name, old.description, old.gid, old.external_id, old.labels, old.folder, old.namespace, old.expression, old.path, old.type);
  INSERT INTO search_revisions (sandbox_id, revision) SELECT old.sandbox_id, 0 WHERE NOT EXISTS (SELECT 1 FROM search_revisions WHERE sandbox_id = old.sandbox_id);
  UPDATE search_revisions SET revision = revision + 1 WHERE sandbox_id = old.sandbox_id;
END;--> statement-breakpoint
CREATE TRIGGER `search_documents_update` AFTER UPDATE ON `search_documents` BEGIN
  INSERT INTO search_index (search_index, rowid, name, description, gid, external_id, labels, folder, namespace, expression, path, type) VALUES ('delete', old.id, old.name, old.description, old.gid, old.external_id, old.labels, old.folder, old.namespace, old.expression, old.path, old.type);
  INSERT INTO search_index (rowid, name, description, gid, external_id, labels, folder, namespace, expression, path, type) VALUES (new.id, new.name, new.description, new.gid, new.external_id, new.labels, new.folder, new.namespace, new.expression, new.path, new.type);
  INSERT INTO search_revisions (sandbox_id, revision) SELECT new.sandbox_id, 0 WHERE NOT EXISTS (SELECT 1 FROM search_revisions WHERE sandbox_id = new.sandbox_id);
  UPDATE search_revisions SET revision = revision + 1 WHERE sandbox_id = new.sandbox_id;
END;--> statement-breakpoint
CREATE TRIGGER `search_audiences_insert` AFTER INSERT ON `audiences` BEGIN
  DELETE FROM search_documents WHERE sandbox_id = new.sandbox_id AND kind = 'AUDIENCE' AND entity_key = CAST(new.id AS TEXT);
  INSERT INTO search_documents (sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type) SELECT sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type FROM search_audience_documents WHERE audience_id IN (new.id);
END;--> statement-breakpoint
CREATE TRIGGER `search_audiences_update` AFTER UPDATE OF `name`, `description`, `namespace`, `labels`, `folder_id`, `definition_id`, `sandbox_id` ON `audiences` BEGIN
  DELETE FROM search_documents WHERE sandbox_id = new.sandbox_id AND kind = 'AUDIENCE' AND entity_key = CAST(new.id AS TEXT);
  INSERT INTO search_documents (sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type) SELECT sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type FROM search_audience_documents WHERE audience_id IN (new.id);
  DELETE FROM search_documents WHERE sandbox_id = new.sandbox_id AND kind = 'DEFINITION' AND entity_key = CAST(new.definition_id AS TEXT);
  INSERT INTO search_documents (sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type) SELECT sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type FROM search_definition_documents WHERE definition_id IN (new.definition_id);
END;--> statement-breakpoint
CREATE TRIGGER `search_audiences_delete` AFTER DELETE ON `audiences` BEGIN
  DELETE FROM search_documents WHERE sandbox_id = old.sandbox_id AND kind = 'AUDIENCE' AND entity_key = CAST(old.id AS TEXT);
  DELETE FROM search_documents WHERE sandbox_id = old.sandbox_id AND kind = 'DEFINITION' AND entity_key = CAST(old.definition_id AS TEXT);
  INSERT INTO search_documents (sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type) SELECT sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type FROM search_definition_documents WHERE definition_id IN (old.definition_id);
END;--> statement-breakpoint
CREATE TRIGGER `search_definitions_insert` AFTER INSERT ON `segment_definitions` BEGIN
  DELETE FROM search_documents WHERE sandbox_id = new.sandbox_id AND kind = 'DEFINITION' AND entity_key = CAST(new.id AS TEXT);
  INSERT INTO search_documents (sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type) SELECT sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type FROM search_definition_documents WHERE definition_id IN (new.id);
  DELETE FROM search_documents WHERE sandbox_id = new.sandbox_id AND kind = 'AUDIENCE' AND entity_key = CAST(new.audience_id AS TEXT);
  INSERT INTO search_documents (sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type) SELECT sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type FROM search_audience_documents WHERE audience_id IN (new.audience_id);
END;--> statement-breakpoint
CREATE TRIGGER `search_definitions_update` AFTER UPDATE OF `name`, `description`, `expression_text`, `audience_id`, `sandbox_id` ON `segment_definitions` BEGIN
  DELETE FROM search_documents WHERE sandbox_id = new.sandbox_id AND kind = 'DEFINITION' AND entity_key = CAST(new.id AS TEXT);
  INSERT INTO search_documents (sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type) SELECT sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type FROM search_definition_documents WHERE definition_id IN (new.id);
  DELETE FROM search_documents WHERE sandbox_id = new.sandbox_id AND kind = 'AUDIENCE' AND entity_key = CAST(new.audience_id AS TEXT);
  INSERT INTO search_documents (sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type) SELECT sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type FROM search_audience_documents WHERE audience_id IN (new.audience_id);
END;--> statement-breakpoint
CREATE TRIGGER `search_definitions_delete` AFTER DELETE ON `segment_definitions` BEGIN
  DELETE FROM search_documents WHERE sandbox_id = old.sandbox_id AND kind = 'DEFINITION' AND entity_key = CAST(old.id AS TEXT);
  DELETE FROM search_documents WHERE sandbox_id = old.sandbox_id AND kind = 'AUDIENCE' AND entity_key = CAST(old.audience_id AS TEXT);
  INSERT INTO search_documents (sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type) SELECT sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type FROM search_audience_documents WHERE audience_id IN (old.audience_id);
END;--> statement-breakpoint
CREATE TRIGGER `search_folders_update` AFTER UPDATE OF `name`, `parent_id` ON `folders` BEGIN
  DELETE FROM search_documents WHERE sandbox_id = new.sandbox_id AND kind = 'AUDIENCE' AND entity_key IN (SELECT CAST(k AS TEXT) FROM (SELECT id AS k FROM audiences WHERE folder_id IN (WITH RECURSIVE sub(id) AS (SELECT new.id UNION ALL SELECT f.id FROM folders f JOIN sub ON f.parent_id = sub.id) SELECT id FROM sub)));
  INSERT INTO search_documents (sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type) SELECT sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type FROM search_audience_documents WHERE audience_id IN (SELECT id FROM audiences WHERE folder_id IN (WITH RECURSIVE sub(id) AS (SELECT new.id UNION ALL SELECT f.id FROM folders f JOIN sub ON f.parent_id = sub.id) SELECT id FROM sub));
  DELETE FROM search_documents WHERE sandbox_id = new.sandbox_id AND kind = 'DEFINITION' AND entity_key IN (SELECT CAST(k AS TEXT) FROM (SELECT definition_id AS k FROM audiences WHERE definition_id IS NOT NULL AND folder_id IN (WITH RECURSIVE sub(id) AS (SELECT new.id UNION ALL SELECT f.id FROM folders f JOIN sub ON f.parent_id = sub.id) SELECT id FROM sub)));
  INSERT INTO search_documents (sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type) SELECT sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type FROM search_definition_documents WHERE definition_id IN (SELECT definition_id FROM audiences WHERE definition_id IS NOT NULL AND folder_id IN (WITH RECURSIVE sub(id) AS (SELECT new.id UNION ALL SELECT f.id FROM folders f JOIN sub ON f.parent_id = sub.id) SELECT id FROM sub));
END;--> statement-breakpoint
CREATE TRIGGER `search_folders_delete` AFTER DELETE ON `folders` BEGIN
  DELETE FROM search_documents WHERE sandbox_id = old.sandbox_id AND kind = 'AUDIENCE' AND entity_key IN (SELECT CAST(k AS TEXT) FROM (SELECT id AS k FROM audiences WHERE folder_id IN (WITH RECURSIVE sub(id) AS (SELECT old.id UNION ALL SELECT f.id FROM folders f JOIN sub ON f.parent_id = sub.id) SELECT id FROM sub)));
  INSERT INTO search_documents (sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type) SELECT sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type FROM search_audience_documents WHERE audience_id IN (SELECT id FROM audiences WHERE folder_id IN (WITH RECURSIVE sub(id) AS (SELECT old.id UNION ALL SELECT f.id FROM folders f JOIN sub ON f.parent_id = sub.id) SELECT id FROM sub));
  DELETE FROM search_documents WHERE sandbox_id = old.sandbox_id AND kind = 'DEFINITION' AND entity_key IN (SELECT CAST(k AS TEXT) FROM (SELECT definition_id AS k FROM audiences WHERE definition_id IS NOT NULL AND folder_id IN (WITH RECURSIVE sub(id) AS (SELECT old.id UNION ALL SELECT f.id FROM folders f JOIN sub ON f.parent_id = sub.id) SELECT id FROM sub)));
  INSERT INTO search_documents (sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type) SELECT sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type FROM search_definition_documents WHERE definition_id IN (SELECT definition_id FROM audiences WHERE definition_id IS NOT NULL AND folder_id IN (WITH RECURSIVE sub(id) AS (SELECT old.id UNION ALL SELECT f.id FROM folders f JOIN sub ON f.parent_id = sub.id) SELECT id FROM sub));
END;--> statement-breakpoint
CREATE TRIGGER `search_fields_insert` AFTER INSERT ON `schema_fields` BEGIN
  DELETE FROM search_documents WHERE sandbox_id = new.sandbox_id AND kind = 'FIELD' AND entity_key = new.class || ':' || new.path;
  INSERT INTO search_documents (sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type) SELECT sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type FROM search_field_documents WHERE sandbox_id = new.sandbox_id AND entity_key = new.class || ':' || new.path;
END;--> statement-breakpoint
CREATE TRIGGER `search_fields_update` AFTER UPDATE ON `schema_fields` BEGIN
  DELETE FROM search_documents WHERE sandbox_id = old.sandbox_id AND kind = 'FIELD' AND entity_key = old.class || ':' || old.path;
  DELETE FROM search_documents WHERE sandbox_id = new.sandbox_id AND kind = 'FIELD' AND entity_key = new.class || ':' || new.path;
  INSERT INTO search_documents (sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type) SELECT sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type FROM search_field_documents WHERE sandbox_id = new.sandbox_id AND entity_key = new.class || ':' || new.path;
END;--> statement-breakpoint
CREATE TRIGGER `search_fields_delete` AFTER DELETE ON `schema_fields` BEGIN
  DELETE FROM search_documents WHERE sandbox_id = old.sandbox_id AND kind = 'FIELD' AND entity_key = old.class || ':' || old.path;
END;--> statement-breakpoint
INSERT INTO search_documents (sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type) SELECT sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type FROM search_audience_documents;--> statement-breakpoint
INSERT INTO search_documents (sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type) SELECT sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type FROM search_definition_documents;--> statement-breakpoint
INSERT INTO search_documents (sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type) SELECT sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type FROM search_field_documents;
