CREATE TABLE `job_range_results` (
	`job_id` integer NOT NULL,
	`audience_id` integer NOT NULL,
	`profile_id` integer NOT NULL,
	`sandbox_id` integer NOT NULL,
	`range_no` integer NOT NULL,
	PRIMARY KEY(`job_id`, `audience_id`, `profile_id`)
);
--> statement-breakpoint
CREATE TABLE `job_ranges` (
	`job_id` integer NOT NULL,
	`range_no` integer NOT NULL,
	`sandbox_id` integer NOT NULL,
	`lo` integer NOT NULL,
	`hi` integer NOT NULL,
	`status` text NOT NULL,
	`lease_owner` text,
	`lease_until` integer,
	`attempts` integer DEFAULT 0 NOT NULL,
	`profiles` integer,
	`failed` text,
	`evaluation_ms` integer,
	`progress_done` integer DEFAULT 0 NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`job_id`, `range_no`)
);
--> statement-breakpoint
CREATE INDEX `job_ranges_status` ON `job_ranges` (`status`,`job_id`);--> statement-breakpoint
ALTER TABLE `jobs` ADD `lease_owner` text;--> statement-breakpoint
ALTER TABLE `jobs` ADD `lease_until` integer;