CREATE TABLE `audience_size_history` (
	`id` integer PRIMARY KEY NOT NULL,
	`sandbox_id` integer NOT NULL,
	`audience_id` integer NOT NULL,
	`job_id` integer NOT NULL,
	`at` integer NOT NULL,
	`before` integer NOT NULL,
	`size` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `audience_size_history_audience` ON `audience_size_history` (`audience_id`,`id`);--> statement-breakpoint
CREATE INDEX `audience_size_history_job` ON `audience_size_history` (`job_id`);--> statement-breakpoint
CREATE TABLE `definition_versions` (
	`sandbox_id` integer NOT NULL,
	`definition_id` integer NOT NULL,
	`version` integer NOT NULL,
	`expression_format` text NOT NULL,
	`expression_value` text NOT NULL,
	`expression_text` text NOT NULL,
	`eval_batch` integer NOT NULL,
	`eval_streaming` integer NOT NULL,
	`eval_edge` integer NOT NULL,
	`changed_at` integer NOT NULL,
	`changed_by` text NOT NULL,
	PRIMARY KEY(`definition_id`, `version`)
);
--> statement-breakpoint
ALTER TABLE `membership_history` ADD `definition_version` integer;