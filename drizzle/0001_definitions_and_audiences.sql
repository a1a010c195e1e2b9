CREATE TABLE `audiences` (
	`id` integer PRIMARY KEY NOT NULL,
	`sandbox_id` integer NOT NULL,
	`name` text NOT NULL,
	`name_key` text NOT NULL,
	`namespace` text NOT NULL,
	`description` text,
	`origin` text NOT NULL,
	`lifecycle_state` text NOT NULL,
	`labels` text DEFAULT '[]' NOT NULL,
	`folder_id` integer,
	`definition_id` integer,
	`size` integer DEFAULT 0 NOT NULL,
	`version` integer DEFAULT 1 NOT NULL,
	`last_evaluated_at` integer,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `audiences_sandbox_namespace_name` ON `audiences` (`sandbox_id`,`namespace`,`name_key`);--> statement-breakpoint
CREATE INDEX `audiences_sandbox_updated` ON `audiences` (`sandbox_id`,`updated_at`,`id`);--> statement-breakpoint
CREATE INDEX `audiences_sandbox_created` ON `audiences` (`sandbox_id`,`created_at`,`id`);--> statement-breakpoint
CREATE INDEX `audiences_sandbox_name` ON `audiences` (`sandbox_id`,`name_key`,`id`);--> statement-breakpoint
CREATE INDEX `audiences_sandbox_size` ON `audiences` (`sandbox_id`,`size`,`id`);--> statement-breakpoint
CREATE INDEX `audiences_definition` ON `audiences` (`definition_id`);--> statement-breakpoint
CREATE TABLE `definition_dependencies` (
	`sandbox_id` integer NOT NULL,
	`definition_id` integer NOT NULL,
	`audience_id` integer NOT NULL,
	PRIMARY KEY(`definition_id`, `audience_id`)
);
--> statement-breakpoint
CREATE INDEX `definition_dependencies_audience` ON `definition_dependencies` (`audience_id`);--> statement-breakpoint
CREATE TABLE `folders` (
	`id` integer PRIMARY KEY NOT NULL,
	`sandbox_id` integer NOT NULL,
	`name` text NOT NULL,
	`parent_id` integer,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `folders_sandbox_parent` ON `folders` (`sandbox_id`,`parent_id`);--> statement-breakpoint
CREATE TABLE `segment_definitions` (
	`id` integer PRIMARY KEY NOT NULL,
	`sandbox_id` integer NOT NULL,
	`audience_id` integer NOT NULL,
	`name` text NOT NULL,
	`name_key` text NOT NULL,
	`description` text,
	`expression_format` text NOT NULL,
	`expression_value` text NOT NULL,
	`expression_text` text NOT NULL,
	`eval_batch` integer NOT NULL,
	`eval_streaming` integer NOT NULL,
	`eval_edge` integer NOT NULL,
	`eligible_streaming` integer NOT NULL,
	`eligible_edge` integer NOT NULL,
	`eligibility_reasons` text DEFAULT '[]' NOT NULL,
	`referenced_fields` text DEFAULT '[]' NOT NULL,
	`ttl_in_days` integer,
	`version` integer DEFAULT 1 NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `segment_definitions_sandbox_name` ON `segment_definitions` (`sandbox_id`,`name_key`);--> statement-breakpoint
CREATE INDEX `segment_definitions_sandbox_updated` ON `segment_definitions` (`sandbox_id`,`updated_at`,`id`);--> statement-breakpoint
CREATE INDEX `segment_definitions_sandbox_created` ON `segment_definitions` (`sandbox_id`,`created_at`,`id`);