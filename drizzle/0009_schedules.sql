CREATE TABLE `schedule_audiences` (
	`schedule_id` integer NOT NULL,
	`audience_id` integer NOT NULL,
	`sandbox_id` integer NOT NULL,
	PRIMARY KEY(`schedule_id`, `audience_id`)
);
--> statement-breakpoint
CREATE INDEX `schedule_audiences_audience` ON `schedule_audiences` (`audience_id`);--> statement-breakpoint
CREATE TABLE `schedule_ticks` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`sandbox_id` integer NOT NULL,
	`schedule_id` integer NOT NULL,
	`due_at` integer NOT NULL,
	`last_due_at` integer,
	`count` integer DEFAULT 1 NOT NULL,
	`outcome` text NOT NULL,
	`job_id` integer,
	`reason` text,
	`recorded_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `schedule_ticks_schedule` ON `schedule_ticks` (`schedule_id`,`id`);--> statement-breakpoint
CREATE TABLE `schedules` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`sandbox_id` integer NOT NULL,
	`name` text NOT NULL,
	`name_key` text NOT NULL,
	`type` text NOT NULL,
	`properties` text NOT NULL,
	`cron` text NOT NULL,
	`timezone` text NOT NULL,
	`state` text NOT NULL,
	`next_run_at` integer,
	`last_run_at` integer,
	`version` integer DEFAULT 1 NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `schedules_sandbox_name` ON `schedules` (`sandbox_id`,`name_key`);--> statement-breakpoint
CREATE INDEX `schedules_sandbox_id` ON `schedules` (`sandbox_id`,`id`);--> statement-breakpoint
CREATE INDEX `jobs_schedule` ON `jobs` (`schedule_id`,`id`);