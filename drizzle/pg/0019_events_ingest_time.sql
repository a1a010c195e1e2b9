DROP INDEX "events_profile_type_ts";--> statement-breakpoint
CREATE INDEX "events_sandbox_ingested" ON "events" USING btree ("sandbox_id","ingested_at","profile_id");--> statement-breakpoint
CREATE INDEX "events_profile_type_ts" ON "events" USING btree ("profile_id","event_type","ts","ingested_at");