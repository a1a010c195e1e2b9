CREATE TABLE `events` (
	`id` integer PRIMARY KEY NOT NULL,
	`sandbox_id` integer NOT NULL,
	`profile_id` integer NOT NULL,
	`ts` integer NOT NULL,
	`event_type` text NOT NULL,
	`event_id` text NOT NULL,
	`payload` blob NOT NULL,
	`ingested_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `events_profile_type_ts` ON `events` (`profile_id`,`event_type`,`ts`);--> statement-breakpoint
CREATE INDEX `events_sandbox_type_ts` ON `events` (`sandbox_id`,`event_type`,`ts`);--> statement-breakpoint
CREATE UNIQUE INDEX `events_sandbox_event_id` ON `events` (`sandbox_id`,`event_id`);--> statement-breakpoint
CREATE TABLE `identities` (
	`sandbox_id` integer NOT NULL,
	`namespace` text NOT NULL,
	`value` text NOT NULL,
	`profile_id` integer NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`sandbox_id`, `namespace`, `value`)
);
--> statement-breakpoint
CREATE INDEX `identities_profile` ON `identities` (`profile_id`);--> statement-breakpoint
CREATE TABLE `jobs` (
	`id` integer PRIMARY KEY NOT NULL,
	`sandbox_id` integer NOT NULL,
	`kind` text NOT NULL,
	`status` text NOT NULL,
	`progress_done` integer DEFAULT 0 NOT NULL,
	`progress_total` integer,
	`input` text NOT NULL,
	`result` text,
	`error` text,
	`trigger` text DEFAULT 'MANUAL' NOT NULL,
	`schedule_id` integer,
	`attempts` integer DEFAULT 0 NOT NULL,
	`created_at` integer NOT NULL,
	`started_at` integer,
	`finished_at` integer,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `jobs_sandbox_kind` ON `jobs` (`sandbox_id`,`kind`,`id`);--> statement-breakpoint
CREATE INDEX `jobs_status` ON `jobs` (`status`,`id`);--> statement-breakpoint
CREATE TABLE `membership_history` (
	`id` integer PRIMARY KEY NOT NULL,
	`sandbox_id` integer NOT NULL,
	`profile_id` integer NOT NULL,
	`audience_id` integer NOT NULL,
	`at` integer NOT NULL,
	`from_status` text,
	`to_status` text NOT NULL,
	`cause` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `membership_history_profile_at` ON `membership_history` (`profile_id`,`at`);--> statement-breakpoint
CREATE TABLE `memberships` (
	`sandbox_id` integer NOT NULL,
	`audience_id` integer NOT NULL,
	`profile_id` integer NOT NULL,
	`status` text NOT NULL,
	`qualified_at` integer,
	`last_evaluated_at` integer NOT NULL,
	`exited_at` integer,
	PRIMARY KEY(`audience_id`, `profile_id`)
);
--> statement-breakpoint
CREATE INDEX `memberships_profile` ON `memberships` (`profile_id`);--> statement-breakpoint
CREATE INDEX `memberships_audience_status` ON `memberships` (`audience_id`,`status`);--> statement-breakpoint
CREATE TABLE `profiles` (
	`id` integer PRIMARY KEY NOT NULL,
	`sandbox_id` integer NOT NULL,
	`attributes` blob NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`sandbox_id`) REFERENCES `sandboxes`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `profiles_sandbox_id` ON `profiles` (`sandbox_id`,`id`);--> statement-breakpoint
CREATE INDEX `profiles_sandbox_updated` ON `profiles` (`sandbox_id`,`updated_at`);--> statement-breakpoint
CREATE TABLE `sandboxes` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`name` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `sandboxes_name_unique` ON `sandboxes` (`name`);--> statement-breakpoint
CREATE TABLE `schema_fields` (
	`sandbox_id` integer NOT NULL,
	`class` text NOT NULL,
	`path` text NOT NULL,
	`type` text NOT NULL,
	`description` text,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`sandbox_id`, `class`, `path`)
);
