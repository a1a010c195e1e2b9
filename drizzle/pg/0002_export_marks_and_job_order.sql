CREATE TABLE "dataset_record_marks" (
	"dataset_id" bigint NOT NULL,
	"job_id" bigint NOT NULL,
	"row" bigint NOT NULL,
	"file" text NOT NULL,
	"offset" bigint NOT NULL,
	CONSTRAINT "dataset_record_marks_job_id_row_pk" PRIMARY KEY("job_id","row")
);
--> statement-breakpoint
DROP TABLE "dataset_records" CASCADE;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "after_job_id" bigint;--> statement-breakpoint
CREATE INDEX "dataset_record_marks_dataset" ON "dataset_record_marks" USING btree ("dataset_id");