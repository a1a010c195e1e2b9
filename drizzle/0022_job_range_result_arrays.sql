PRAGMA foreign_keys=OFF;--> statement-breakpoint
CREATE TABLE `__new_job_range_results` (
	`job_id` integer NOT NULL,
	`range_no` integer NOT NULL,
	`audience_id` integer NOT NULL,
	`sandbox_id` integer NOT NULL,
	`profile_ids` blob NOT NULL,
	PRIMARY KEY(`job_id`, `range_no`, `audience_id`)
);
--> statement-breakpoint
-- Hand-edited: drizzle-kit copied a column the old table does not have. Nothing is carried over:
-- only PostgreSQL runs ranged jobs, so SQLite's table has never held a row.
DROP TABLE `job_range_results`;--> statement-breakpoint
ALTER TABLE `__new_job_range_results` RENAME TO `job_range_results`;--> statement-breakpoint
PRAGMA foreign_keys=ON;