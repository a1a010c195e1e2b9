DROP INDEX "memberships_audience_status";--> statement-breakpoint
CREATE INDEX "memberships_exited" ON "memberships" USING btree ("audience_id","exited_at") WHERE "memberships"."status" = 'EXITED';