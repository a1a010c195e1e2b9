-- Custom SQL (drizzle-kit cannot express triggers): sandboxes.profile_count follows every insert and
-- delete of a profile, whatever code path makes it, in the same transaction.
CREATE TRIGGER `profiles_count_insert` AFTER INSERT ON `profiles` BEGIN
  UPDATE `sandboxes` SET `profile_count` = `profile_count` + 1 WHERE `id` = NEW.`sandbox_id`;
END;--> statement-breakpoint
CREATE TRIGGER `profiles_count_delete` AFTER DELETE ON `profiles` BEGIN
  UPDATE `sandboxes` SET `profile_count` = `profile_count` - 1 WHERE `id` = OLD.`sandbox_id`;
END;--> statement-breakpoint
CREATE TRIGGER `profiles_count_move` AFTER UPDATE OF `sandbox_id` ON `profiles` WHEN OLD.`sandbox_id` != NEW.`sandbox_id` BEGIN
  UPDATE `sandboxes` SET `profile_count` = `profile_count` - 1 WHERE `id` = OLD.`sandbox_id`;
  UPDATE `sandboxes` SET `profile_count` = `profile_count` + 1 WHERE `id` = NEW.`sandbox_id`;
END;--> statement-breakpoint
UPDATE `sandboxes` SET `profile_count` = (SELECT count(*) FROM `profiles` WHERE `profiles`.`sandbox_id` = `sandboxes`.`id`);
