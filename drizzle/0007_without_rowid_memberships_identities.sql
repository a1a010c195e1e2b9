-- Custom SQL (drizzle-kit cannot express WITHOUT ROWID): memberships and identities become
-- clustered on their primary keys, as docs/storage.md lays them out. A membership probe
-- (audience_id, profile_id) then reads the row itself (status included), every secondary index
-- carries the key columns (so (audience_id, status) lists profile ids and (profile_id, namespace)
-- knows the sandbox without a row read), and each table is one b-tree fewer to write.
-- The columns are unchanged; a later drizzle-kit table rebuild of either must keep WITHOUT ROWID.
CREATE TABLE `__new_memberships` (
	`sandbox_id` integer NOT NULL,
	`audience_id` integer NOT NULL,
	`profile_id` integer NOT NULL,
	`status` text NOT NULL,
	`qualified_at` integer,
	`last_evaluated_at` integer NOT NULL,
	`exited_at` integer,
	PRIMARY KEY(`audience_id`, `profile_id`)
) WITHOUT ROWID;--> statement-breakpoint
INSERT INTO `__new_memberships` SELECT `sandbox_id`, `audience_id`, `profile_id`, `status`, `qualified_at`, `last_evaluated_at`, `exited_at` FROM `memberships` ORDER BY `audience_id`, `profile_id`;--> statement-breakpoint
DROP TABLE `memberships`;--> statement-breakpoint
ALTER TABLE `__new_memberships` RENAME TO `memberships`;--> statement-breakpoint
CREATE INDEX `memberships_profile` ON `memberships` (`profile_id`);--> statement-breakpoint
CREATE INDEX `memberships_audience_status` ON `memberships` (`audience_id`,`status`);--> statement-breakpoint
CREATE TABLE `__new_identities` (
	`sandbox_id` integer NOT NULL,
	`namespace` text NOT NULL,
	`value` text NOT NULL,
	`profile_id` integer NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`sandbox_id`, `namespace`, `value`)
) WITHOUT ROWID;--> statement-breakpoint
INSERT INTO `__new_identities` SELECT `sandbox_id`, `namespace`, `value`, `profile_id`, `created_at` FROM `identities` ORDER BY `sandbox_id`, `namespace`, `value`;--> statement-breakpoint
DROP TABLE `identities`;--> statement-breakpoint
ALTER TABLE `__new_identities` RENAME TO `identities`;--> statement-breakpoint
CREATE INDEX `identities_profile_namespace` ON `identities` (`profile_id`,`namespace`);
