CREATE TABLE "segment_job_definitions" (
	"definition_id" bigint NOT NULL,
	"job_id" bigint NOT NULL,
	CONSTRAINT "segment_job_definitions_definition_id_job_id_pk" PRIMARY KEY("definition_id","job_id")
);--> statement-breakpoint
-- Custom SQL (drizzle-kit cannot express functions or triggers): what SQLite's migration 0023
-- does. Every segment job queued, by whatever path, records the definitions it is asked to
-- evaluate in its own transaction: those it names in its sandbox, or with `all: true` those
-- batch-enabled when it is queued.
CREATE FUNCTION segql_segment_job_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF jsonb_typeof(NEW.input -> 'definitionIds') = 'array' THEN
    INSERT INTO segment_job_definitions (definition_id, job_id)
      SELECT d.id, NEW.id FROM segment_definitions d
      WHERE d.id IN (SELECT CAST(x AS bigint) FROM jsonb_array_elements_text(NEW.input -> 'definitionIds') x)
        AND d.sandbox_id = NEW.sandbox_id
      ON CONFLICT DO NOTHING;
  END IF;
  -- SQLite's json_extract gives 1 for true and for 1.
  IF NEW.input ->> 'all' IN ('true', '1') THEN
    INSERT INTO segment_job_definitions (definition_id, job_id)
      SELECT d.id, NEW.id FROM segment_definitions d
      WHERE d.sandbox_id = NEW.sandbox_id AND d.eval_batch AND d.created_at <= NEW.created_at
      ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END $$;--> statement-breakpoint
CREATE TRIGGER segment_job_definitions_queued AFTER INSERT ON jobs FOR EACH ROW
  WHEN (NEW.kind = 'SEGMENT') EXECUTE FUNCTION segql_segment_job_queued();--> statement-breakpoint
CREATE FUNCTION segql_segment_job_definition_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM segment_job_definitions WHERE definition_id = OLD.id;
  RETURN NULL;
END $$;--> statement-breakpoint
CREATE TRIGGER segment_job_definitions_definition_delete AFTER DELETE ON segment_definitions FOR EACH ROW
  EXECUTE FUNCTION segql_segment_job_definition_deleted();--> statement-breakpoint
-- No path deletes a segment job today (only previews are purged); this keeps the table true if
-- one ever does. Through the key: the job's rows are among its sandbox's definitions.
CREATE FUNCTION segql_segment_job_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM segment_job_definitions
    WHERE definition_id IN (SELECT id FROM segment_definitions WHERE sandbox_id = OLD.sandbox_id) AND job_id = OLD.id;
  RETURN NULL;
END $$;--> statement-breakpoint
CREATE TRIGGER segment_job_definitions_job_delete AFTER DELETE ON jobs FOR EACH ROW
  WHEN (OLD.kind = 'SEGMENT') EXECUTE FUNCTION segql_segment_job_deleted();--> statement-breakpoint
-- The jobs queued before this migration, by the rule the read used until now (`all` read against
-- the definitions batch-enabled today), so an upgraded store names the same latest jobs.
INSERT INTO segment_job_definitions (definition_id, job_id)
  SELECT d.id, j.id FROM jobs j
    CROSS JOIN LATERAL jsonb_array_elements_text(
      CASE WHEN jsonb_typeof(j.input -> 'definitionIds') = 'array' THEN j.input -> 'definitionIds' ELSE '[]'::jsonb END) x
    JOIN segment_definitions d ON d.id = CAST(x AS bigint) AND d.sandbox_id = j.sandbox_id
  WHERE j.kind = 'SEGMENT'
  UNION
  SELECT d.id, j.id FROM jobs j
    JOIN segment_definitions d ON d.sandbox_id = j.sandbox_id AND d.eval_batch AND d.created_at <= j.created_at
  WHERE j.kind = 'SEGMENT' AND j.input ->> 'all' IN ('true', '1');
