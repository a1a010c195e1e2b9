-- Custom SQL (views and triggers): an external audience's caller-chosen id becomes part of its
-- search document, so `externalId`-style lookups (and `external_id:` queries) find it. The
-- external_audiences row is written after its audience row, so its own triggers refresh the
-- audience's document in the same transaction.
DROP VIEW `search_audience_documents`;--> statement-breakpoint
CREATE VIEW `search_audience_documents` AS
  SELECT a.sandbox_id AS sandbox_id, 'AUDIENCE' AS kind, CAST(a.id AS TEXT) AS entity_key, a.name AS name,
    a.description AS description, segql_global_id('Audience', a.id) AS gid, x.external_id AS external_id,
    (SELECT group_concat(value, ' ') FROM json_each(a.labels)) AS labels,
    (SELECT fp.path FROM search_folder_paths fp WHERE fp.id = a.folder_id) AS folder,
    a.namespace AS namespace, d.expression_text AS expression, NULL AS path, NULL AS type, a.id AS audience_id
  FROM audiences a LEFT JOIN segment_definitions d ON d.id = a.definition_id
    LEFT JOIN external_audiences x ON x.audience_id = a.id;--> statement-breakpoint
CREATE TRIGGER `search_external_audiences_insert` AFTER INSERT ON `external_audiences` BEGIN
  DELETE FROM search_documents WHERE sandbox_id = new.sandbox_id AND kind = 'AUDIENCE' AND entity_key = CAST(new.audience_id AS TEXT);
  INSERT INTO search_documents (sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type) SELECT sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type FROM search_audience_documents WHERE audience_id IN (new.audience_id);
END;--> statement-breakpoint
CREATE TRIGGER `search_external_audiences_update` AFTER UPDATE OF `external_id` ON `external_audiences` BEGIN
  DELETE FROM search_documents WHERE sandbox_id = new.sandbox_id AND kind = 'AUDIENCE' AND entity_key = CAST(new.audience_id AS TEXT);
  INSERT INTO search_documents (sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type) SELECT sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type FROM search_audience_documents WHERE audience_id IN (new.audience_id);
END;--> statement-breakpoint
UPDATE search_documents SET external_id = (
  SELECT x.external_id FROM external_audiences x WHERE CAST(x.audience_id AS TEXT) = search_documents.entity_key
) WHERE kind = 'AUDIENCE' AND EXISTS (
  SELECT 1 FROM external_audiences x WHERE CAST(x.audience_id AS TEXT) = search_documents.entity_key AND x.external_id IS NOT NULL
);
