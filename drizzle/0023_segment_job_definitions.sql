CREATE TABLE `segment_job_definitions` (
	`definition_id` integer NOT NULL,
	`job_id` integer NOT NULL,
	PRIMARY KEY(`definition_id`, `job_id`)
) WITHOUT ROWID;--> statement-breakpoint
-- Custom SQL (drizzle-kit cannot express triggers or WITHOUT ROWID): the segment jobs asked to
-- evaluate each definition, kept by triggers so that every path queueing a segment job (the
-- runner's queue, an export's evaluateFirst, a schedule's tick) records them in the job's own
-- transaction. A job that names definitions gets a row for each of them in its sandbox; an
-- `all: true` job gets one for each definition batch-enabled when it is queued (what it is asked
-- to evaluate, as it was before this table: by id, or `all` after the definition was made while
-- batch was on). Two triggers, so a job naming definitions never reads the sandbox's others.
CREATE TRIGGER `segment_job_definitions_named` AFTER INSERT ON `jobs` WHEN NEW.`kind` = 'SEGMENT' BEGIN
  INSERT OR IGNORE INTO `segment_job_definitions` (`definition_id`, `job_id`)
    SELECT d.`id`, NEW.`id` FROM `segment_definitions` d
    WHERE d.`id` IN (SELECT x.`value` FROM json_each(NEW.`input`, '$.definitionIds') x)
      AND d.`sandbox_id` = NEW.`sandbox_id`;
END;--> statement-breakpoint
CREATE TRIGGER `segment_job_definitions_all` AFTER INSERT ON `jobs`
  WHEN NEW.`kind` = 'SEGMENT' AND json_extract(NEW.`input`, '$.all') = 1 BEGIN
  INSERT OR IGNORE INTO `segment_job_definitions` (`definition_id`, `job_id`)
    SELECT d.`id`, NEW.`id` FROM `segment_definitions` d
    WHERE d.`sandbox_id` = NEW.`sandbox_id` AND d.`eval_batch` = 1 AND d.`created_at` <= NEW.`created_at`;
END;--> statement-breakpoint
CREATE TRIGGER `segment_job_definitions_definition_delete` AFTER DELETE ON `segment_definitions` BEGIN
  DELETE FROM `segment_job_definitions` WHERE `definition_id` = OLD.`id`;
END;--> statement-breakpoint
-- No path deletes a segment job today (only previews are purged); this keeps the table true if
-- one ever does. Through the key: the job's rows are among its sandbox's definitions.
CREATE TRIGGER `segment_job_definitions_job_delete` AFTER DELETE ON `jobs` WHEN OLD.`kind` = 'SEGMENT' BEGIN
  DELETE FROM `segment_job_definitions`
    WHERE `definition_id` IN (SELECT `id` FROM `segment_definitions` WHERE `sandbox_id` = OLD.`sandbox_id`)
      AND `job_id` = OLD.`id`;
END;--> statement-breakpoint
-- The jobs queued before this migration, by the rule the read used until now (`all` read against
-- the definitions batch-enabled today), so an upgraded store names the same latest jobs. CROSS
-- JOIN keeps SQLite's order: each named id looked up by key, where the planner would otherwise
-- walk every definition of the sandbox per job (20,000 jobs over 2,000 definitions: 12.6 s
-- instead of 41 ms).
INSERT OR IGNORE INTO `segment_job_definitions` (`definition_id`, `job_id`)
  SELECT d.`id`, j.`id` FROM `jobs` j CROSS JOIN json_each(j.`input`, '$.definitionIds') x
    CROSS JOIN `segment_definitions` d ON d.`id` = x.`value` AND d.`sandbox_id` = j.`sandbox_id`
  WHERE j.`kind` = 'SEGMENT';--> statement-breakpoint
INSERT OR IGNORE INTO `segment_job_definitions` (`definition_id`, `job_id`)
  SELECT d.`id`, j.`id` FROM `jobs` j
    JOIN `segment_definitions` d ON d.`sandbox_id` = j.`sandbox_id` AND d.`eval_batch` = 1 AND d.`created_at` <= j.`created_at`
  WHERE j.`kind` = 'SEGMENT' AND json_extract(j.`input`, '$.all') = 1;
