-- Custom SQL (drizzle-kit cannot express triggers): a job row's change is announced with the row
-- itself, as it stands when its transaction commits, so each serving process tells subscribers
-- every state a job passed through — a preview's running estimates written milliseconds apart
-- included — instead of reading the row after the notification and hearing only the latest.
-- The trigger is deferred to commit and reads the row then: a transaction that updates a job
-- twice announces its final state twice, and PostgreSQL folds those identical notifications
-- into one. A row too large for a notification (8,000 bytes) is announced by its id as before,
-- and read by the watcher. Column names as job-store.ts reads them (StoredJobRow).
DROP TRIGGER jobs_notify_update ON jobs;--> statement-breakpoint
DROP FUNCTION segql_job_updated();--> statement-breakpoint
CREATE FUNCTION segql_job_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  payload text;
BEGIN
  SELECT json_build_object(
      'id', j.id, 'sandboxId', j.sandbox_id, 'kind', j.kind, 'status', j.status,
      'progressDone', j.progress_done, 'progressTotal', j.progress_total,
      'input', CAST(j.input AS text), 'result', CAST(j.result AS text), 'error', j.error,
      'trigger', j."trigger", 'scheduleId', j.schedule_id, 'afterJobId', j.after_job_id,
      'attempts', j.attempts, 'leaseOwner', j.lease_owner, 'leaseUntil', j.lease_until,
      'createdAt', j.created_at, 'startedAt', j.started_at, 'finishedAt', j.finished_at,
      'updatedAt', j.updated_at)::text
    INTO payload FROM jobs j WHERE j.id = NEW.id;
  -- Deleted later in the same transaction: nothing to tell.
  IF payload IS NULL THEN RETURN NULL; END IF;
  IF octet_length(payload) > 7900 THEN payload := NEW.id::text; END IF;
  PERFORM pg_notify('segql_job_updates', payload);
  RETURN NULL;
END $$;--> statement-breakpoint
CREATE CONSTRAINT TRIGGER jobs_notify_update AFTER INSERT OR UPDATE ON jobs
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION segql_job_updated();
