CREATE TABLE `external_audiences` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`sandbox_id` integer NOT NULL,
	`audience_id` integer NOT NULL,
	`external_id` text,
	`fields` text NOT NULL,
	`identity_field` text NOT NULL,
	`identity_namespace` text NOT NULL,
	`ttl_in_days` integer NOT NULL,
	`version` integer DEFAULT 1 NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `external_audiences_audience` ON `external_audiences` (`audience_id`);--> statement-breakpoint
CREATE UNIQUE INDEX `external_audiences_sandbox_external_id` ON `external_audiences` (`sandbox_id`,`external_id`);--> statement-breakpoint
CREATE TABLE `external_members` (
	`sandbox_id` integer NOT NULL,
	`audience_id` integer NOT NULL,
	`namespace` text NOT NULL,
	`value` text NOT NULL,
	`payload` text NOT NULL,
	`imported_at` integer NOT NULL,
	PRIMARY KEY(`audience_id`, `value`)
);
--> statement-breakpoint
CREATE INDEX `external_members_identity` ON `external_members` (`sandbox_id`,`namespace`,`value`);--> statement-breakpoint
CREATE INDEX `external_members_imported` ON `external_members` (`audience_id`,`imported_at`);--> statement-breakpoint
CREATE TABLE `ingestion_errors` (
	`job_id` integer NOT NULL,
	`line` integer NOT NULL,
	`message` text NOT NULL,
	PRIMARY KEY(`job_id`, `line`)
);
--> statement-breakpoint
ALTER TABLE `memberships` ADD `payload` text;