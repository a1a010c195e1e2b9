CREATE TABLE `search_documents` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`sandbox_id` integer NOT NULL,
	`kind` text NOT NULL,
	`entity_key` text NOT NULL,
	`name` text,
	`description` text,
	`gid` text,
	`external_id` text,
	`labels` text,
	`folder` text,
	`namespace` text NOT NULL,
	`expression` text,
	`path` text,
	`type` text
);
--> statement-breakpoint
CREATE UNIQUE INDEX `search_documents_entity` ON `search_documents` (`sandbox_id`,`kind`,`entity_key`);--> statement-breakpoint
CREATE INDEX `search_documents_sandbox_namespace` ON `search_documents` (`sandbox_id`,`namespace`);--> statement-breakpoint
CREATE TABLE `search_revisions` (
	`sandbox_id` integer PRIMARY KEY NOT NULL,
	`revision` integer DEFAULT 0 NOT NULL
);
