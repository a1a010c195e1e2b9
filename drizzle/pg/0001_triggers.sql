-- Custom SQL (drizzle-kit cannot express functions, views or triggers): what SQLite's migrations
-- 0005, 0011 and 0017 do with triggers, in PL/pgSQL. sandboxes.profile_count follows every insert,
-- delete and move of a profile; search_documents follows audiences, definitions, folders, schema
-- fields and external audiences in the same transaction as the change; search_revisions is bumped
-- by every change of a sandbox's documents. The FTS5 table has no counterpart here: the
-- generated search_vector column of search_documents is the index.
CREATE FUNCTION segql_profiles_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Statement-level with transition tables: one update per sandbox per statement, so a bulk
  -- ingest does not take the sandbox row's lock once per profile.
  IF TG_OP = 'INSERT' THEN
    UPDATE sandboxes s SET profile_count = s.profile_count + c.n
      FROM (SELECT sandbox_id, count(*) AS n FROM counted_rows GROUP BY sandbox_id) c WHERE s.id = c.sandbox_id;
  ELSE
    UPDATE sandboxes s SET profile_count = s.profile_count - c.n
      FROM (SELECT sandbox_id, count(*) AS n FROM counted_rows GROUP BY sandbox_id) c WHERE s.id = c.sandbox_id;
  END IF;
  RETURN NULL;
END $$;--> statement-breakpoint
CREATE TRIGGER profiles_count_insert AFTER INSERT ON profiles REFERENCING NEW TABLE AS counted_rows
  FOR EACH STATEMENT EXECUTE FUNCTION segql_profiles_counted();--> statement-breakpoint
CREATE TRIGGER profiles_count_delete AFTER DELETE ON profiles REFERENCING OLD TABLE AS counted_rows
  FOR EACH STATEMENT EXECUTE FUNCTION segql_profiles_counted();--> statement-breakpoint
CREATE FUNCTION segql_profile_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE sandboxes SET profile_count = profile_count - 1 WHERE id = OLD.sandbox_id;
  UPDATE sandboxes SET profile_count = profile_count + 1 WHERE id = NEW.sandbox_id;
  RETURN NULL;
END $$;--> statement-breakpoint
-- Row-level: PostgreSQL allows no transition table on a trigger with a column list.
CREATE TRIGGER profiles_count_move AFTER UPDATE OF sandbox_id ON profiles FOR EACH ROW
  WHEN (OLD.sandbox_id IS DISTINCT FROM NEW.sandbox_id) EXECUTE FUNCTION segql_profile_moved();--> statement-breakpoint
-- The domain's encodeGlobalId: base64 of "<Type>:<id>" (short enough never to be line-wrapped).
CREATE FUNCTION segql_global_id(type text, id bigint) RETURNS text IMMUTABLE LANGUAGE sql AS $$
  SELECT CASE WHEN type IS NULL OR id IS NULL THEN NULL ELSE encode(convert_to(type || ':' || id, 'UTF8'), 'base64') END
$$;--> statement-breakpoint
CREATE VIEW search_folder_paths AS
  WITH RECURSIVE p(id, path) AS (
    SELECT id, '/' || name FROM folders WHERE parent_id IS NULL
    UNION ALL
    SELECT f.id, p.path || '/' || f.name FROM folders f JOIN p ON f.parent_id = p.id
  )
  SELECT id, path FROM p;--> statement-breakpoint
CREATE VIEW search_audience_documents AS
  SELECT a.sandbox_id AS sandbox_id, 'AUDIENCE'::text AS kind, a.id::text AS entity_key, a.name AS name,
    a.description AS description, segql_global_id('Audience', a.id) AS gid, x.external_id AS external_id,
    (SELECT string_agg(l.value, ' ') FROM jsonb_array_elements_text(a.labels::jsonb) AS l(value)) AS labels,
    (SELECT fp.path FROM search_folder_paths fp WHERE fp.id = a.folder_id) AS folder,
    a.namespace AS namespace, d.expression_text AS expression, NULL::text AS path, NULL::text AS type,
    a.id AS audience_id
  FROM audiences a LEFT JOIN segment_definitions d ON d.id = a.definition_id
    LEFT JOIN external_audiences x ON x.audience_id = a.id;--> statement-breakpoint
CREATE VIEW search_definition_documents AS
  SELECT d.sandbox_id AS sandbox_id, 'DEFINITION'::text AS kind, d.id::text AS entity_key, d.name AS name,
    d.description AS description, segql_global_id('SegmentDefinition', d.id) AS gid, NULL::text AS external_id,
    (SELECT string_agg(l.value, ' ') FROM jsonb_array_elements_text(a.labels::jsonb) AS l(value)) AS labels,
    (SELECT fp.path FROM search_folder_paths fp WHERE fp.id = a.folder_id) AS folder,
    coalesce(a.namespace, 'segql') AS namespace, d.expression_text AS expression, NULL::text AS path,
    NULL::text AS type, d.id AS definition_id
  FROM segment_definitions d LEFT JOIN audiences a ON a.id = d.audience_id;--> statement-breakpoint
CREATE VIEW search_field_documents AS
  SELECT sandbox_id, 'FIELD'::text AS kind, class || ':' || path AS entity_key, path AS name, description,
    NULL::text AS gid, NULL::text AS external_id, NULL::text AS labels, NULL::text AS folder,
    'schema'::text AS namespace, NULL::text AS expression, path, type
  FROM schema_fields;--> statement-breakpoint
CREATE FUNCTION segql_search_audience(sid bigint, aid bigint) RETURNS void LANGUAGE sql AS $$
  DELETE FROM search_documents WHERE sandbox_id = sid AND kind = 'AUDIENCE' AND entity_key = aid::text;
  INSERT INTO search_documents (sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type)
    SELECT sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type
    FROM search_audience_documents WHERE audience_id = aid;
$$;--> statement-breakpoint
CREATE FUNCTION segql_search_definition(sid bigint, did bigint) RETURNS void LANGUAGE sql AS $$
  DELETE FROM search_documents WHERE sandbox_id = sid AND kind = 'DEFINITION' AND entity_key = did::text;
  INSERT INTO search_documents (sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type)
    SELECT sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type
    FROM search_definition_documents WHERE definition_id = did;
$$;--> statement-breakpoint
CREATE FUNCTION segql_search_field(sid bigint, key text) RETURNS void LANGUAGE sql AS $$
  DELETE FROM search_documents WHERE sandbox_id = sid AND kind = 'FIELD' AND entity_key = key;
  INSERT INTO search_documents (sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type)
    SELECT sandbox_id, kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type
    FROM search_field_documents WHERE sandbox_id = sid AND entity_key = key;
$$;--> statement-breakpoint
CREATE FUNCTION segql_search_revision() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE sid bigint := CASE WHEN TG_OP = 'DELETE' THEN OLD.sandbox_id ELSE NEW.sandbox_id END;
BEGIN
  INSERT INTO search_revisions (sandbox_id, revision) VALUES (sid, 1)
    ON CONFLICT (sandbox_id) DO UPDATE SET revision = search_revisions.revision + 1;
  RETURN NULL;
END $$;--> statement-breakpoint
CREATE TRIGGER search_documents_changed AFTER INSERT OR UPDATE OR DELETE ON search_documents
  FOR EACH ROW EXECUTE FUNCTION segql_search_revision();--> statement-breakpoint
CREATE FUNCTION segql_search_audiences() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM segql_search_audience(OLD.sandbox_id, OLD.id);
    PERFORM segql_search_definition(OLD.sandbox_id, OLD.definition_id);
  ELSE
    PERFORM segql_search_audience(NEW.sandbox_id, NEW.id);
    IF TG_OP = 'UPDATE' THEN PERFORM segql_search_definition(NEW.sandbox_id, NEW.definition_id); END IF;
  END IF;
  RETURN NULL;
END $$;--> statement-breakpoint
CREATE TRIGGER search_audiences_insert AFTER INSERT ON audiences FOR EACH ROW EXECUTE FUNCTION segql_search_audiences();--> statement-breakpoint
CREATE TRIGGER search_audiences_update AFTER UPDATE OF name, description, namespace, labels, folder_id, definition_id, sandbox_id
  ON audiences FOR EACH ROW EXECUTE FUNCTION segql_search_audiences();--> statement-breakpoint
CREATE TRIGGER search_audiences_delete AFTER DELETE ON audiences FOR EACH ROW EXECUTE FUNCTION segql_search_audiences();--> statement-breakpoint
CREATE FUNCTION segql_search_definitions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM segql_search_definition(OLD.sandbox_id, OLD.id);
    PERFORM segql_search_audience(OLD.sandbox_id, OLD.audience_id);
  ELSE
    PERFORM segql_search_definition(NEW.sandbox_id, NEW.id);
    PERFORM segql_search_audience(NEW.sandbox_id, NEW.audience_id);
  END IF;
  RETURN NULL;
END $$;--> statement-breakpoint
CREATE TRIGGER search_definitions_insert AFTER INSERT ON segment_definitions FOR EACH ROW EXECUTE FUNCTION segql_search_definitions();--> statement-breakpoint
CREATE TRIGGER search_definitions_update AFTER UPDATE OF name, description, expression_text, audience_id, sandbox_id
  ON segment_definitions FOR EACH ROW EXECUTE FUNCTION segql_search_definitions();--> statement-breakpoint
CREATE TRIGGER search_definitions_delete AFTER DELETE ON segment_definitions FOR EACH ROW EXECUTE FUNCTION segql_search_definitions();--> statement-breakpoint
CREATE FUNCTION segql_search_folders() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  f folders;
  a record;
BEGIN
  f := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
  -- Every audience filed under the folder or below it shows the folder's path.
  FOR a IN
    WITH RECURSIVE sub(id) AS (SELECT f.id UNION ALL SELECT c.id FROM folders c JOIN sub ON c.parent_id = sub.id)
    SELECT id, definition_id FROM audiences WHERE folder_id IN (SELECT id FROM sub)
  LOOP
    PERFORM segql_search_audience(f.sandbox_id, a.id);
    PERFORM segql_search_definition(f.sandbox_id, a.definition_id);
  END LOOP;
  RETURN NULL;
END $$;--> statement-breakpoint
CREATE TRIGGER search_folders_update AFTER UPDATE OF name, parent_id ON folders FOR EACH ROW EXECUTE FUNCTION segql_search_folders();--> statement-breakpoint
CREATE TRIGGER search_folders_delete AFTER DELETE ON folders FOR EACH ROW EXECUTE FUNCTION segql_search_folders();--> statement-breakpoint
CREATE FUNCTION segql_search_fields() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    DELETE FROM search_documents WHERE sandbox_id = OLD.sandbox_id AND kind = 'FIELD' AND entity_key = OLD.class || ':' || OLD.path;
  END IF;
  IF TG_OP <> 'DELETE' THEN PERFORM segql_search_field(NEW.sandbox_id, NEW.class || ':' || NEW.path); END IF;
  RETURN NULL;
END $$;--> statement-breakpoint
CREATE TRIGGER search_fields_changed AFTER INSERT OR UPDATE OR DELETE ON schema_fields FOR EACH ROW EXECUTE FUNCTION segql_search_fields();--> statement-breakpoint
CREATE FUNCTION segql_search_external_audiences() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM segql_search_audience(NEW.sandbox_id, NEW.audience_id);
  RETURN NULL;
END $$;--> statement-breakpoint
CREATE TRIGGER search_external_audiences_insert AFTER INSERT ON external_audiences FOR EACH ROW EXECUTE FUNCTION segql_search_external_audiences();--> statement-breakpoint
CREATE TRIGGER search_external_audiences_update AFTER UPDATE OF external_id ON external_audiences FOR EACH ROW EXECUTE FUNCTION segql_search_external_audiences();
