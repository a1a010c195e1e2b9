CREATE TABLE "job_range_results" (
	"job_id" bigint NOT NULL,
	"audience_id" bigint NOT NULL,
	"profile_id" bigint NOT NULL,
	"sandbox_id" bigint NOT NULL,
	"range_no" bigint NOT NULL,
	CONSTRAINT "job_range_results_job_id_audience_id_profile_id_pk" PRIMARY KEY("job_id","audience_id","profile_id")
);
--> statement-breakpoint
CREATE TABLE "job_ranges" (
	"job_id" bigint NOT NULL,
	"range_no" bigint NOT NULL,
	"sandbox_id" bigint NOT NULL,
	"lo" bigint NOT NULL,
	"hi" bigint NOT NULL,
	"status" text NOT NULL,
	"lease_owner" text,
	"lease_until" bigint,
	"attempts" bigint DEFAULT 0 NOT NULL,
	"profiles" bigint,
	"failed" jsonb,
	"evaluation_ms" bigint,
	"progress_done" bigint DEFAULT 0 NOT NULL,
	"updated_at" bigint NOT NULL,
	CONSTRAINT "job_ranges_job_id_range_no_pk" PRIMARY KEY("job_id","range_no")
);
--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "lease_owner" text;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "lease_until" bigint;--> statement-breakpoint
CREATE INDEX "job_ranges_status" ON "job_ranges" USING btree ("status","job_id");--> statement-breakpoint
CREATE INDEX "job_ranges_queued" ON "job_ranges" USING btree ("job_id","range_no") WHERE "job_ranges"."status" = 'QUEUED';