-- Custom SQL (drizzle-kit cannot express triggers): every change of a job row, whoever makes it
-- (a serving process queueing or cancelling, a node claiming, renewing a lease with progress,
-- finishing, or a sweep taking a lease back), is announced on `segql_job_updates` with the job's
-- id, so every serving process can publish it to its subscribers (cluster-job-watcher.ts). The
-- notification is sent at commit, once per job and transaction (PostgreSQL folds duplicates).
CREATE FUNCTION segql_job_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('segql_job_updates', NEW.id::text);
  RETURN NULL;
END $$;--> statement-breakpoint
CREATE TRIGGER jobs_notify_update AFTER INSERT OR UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION segql_job_updated();
