DROP INDEX `identities_profile`;--> statement-breakpoint
CREATE INDEX `identities_profile_namespace` ON `identities` (`profile_id`,`namespace`);--> statement-breakpoint
PRAGMA foreign_keys=OFF;--> statement-breakpoint
CREATE TABLE `__new_preview_results` (
	`job_id` integer PRIMARY KEY NOT NULL,
	`sandbox_id` integer NOT NULL,
	`profile_ids` blob NOT NULL,
	`count` integer NOT NULL
);
--> statement-breakpoint
-- Hand-edited: drizzle-kit copied columns the old table does not have. Turning a row per profile into
-- one packed float64 blob per preview cannot be written in SQL, so previews made before this migration
-- are dropped with their results (previews are ephemeral, 24 h, and can be run again).
DELETE FROM `jobs` WHERE `kind` = 'PREVIEW';--> statement-breakpoint
DROP TABLE `preview_results`;--> statement-breakpoint
ALTER TABLE `__new_preview_results` RENAME TO `preview_results`;--> statement-breakpoint
PRAGMA foreign_keys=ON;