DROP INDEX "memberships_exited";--> statement-breakpoint
CREATE INDEX "memberships_exited" ON "memberships" USING btree ("audience_id","exited_at") WHERE "memberships"."exited_at" IS NOT NULL;