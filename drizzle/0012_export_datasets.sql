CREATE TABLE `dataset_files` (
	`dataset_id` integer NOT NULL,
	`name` text NOT NULL,
	`job_id` integer NOT NULL,
	`rows` integer NOT NULL,
	`bytes` integer NOT NULL,
	`sha256` text NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`dataset_id`, `name`)
);
--> statement-breakpoint
CREATE TABLE `dataset_records` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`dataset_id` integer NOT NULL,
	`job_id` integer NOT NULL,
	`record` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `dataset_records_job` ON `dataset_records` (`job_id`);--> statement-breakpoint
CREATE TABLE `datasets` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`sandbox_id` integer NOT NULL,
	`name` text NOT NULL,
	`format` text NOT NULL,
	`current_job_id` integer,
	`last_export_at` integer,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `datasets_sandbox_name` ON `datasets` (`sandbox_id`,`name`);