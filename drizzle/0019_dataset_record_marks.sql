CREATE TABLE `dataset_record_marks` (
	`dataset_id` integer NOT NULL,
	`job_id` integer NOT NULL,
	`row` integer NOT NULL,
	`file` text NOT NULL,
	`offset` integer NOT NULL,
	PRIMARY KEY(`job_id`, `row`)
);
--> statement-breakpoint
CREATE INDEX `dataset_record_marks_dataset` ON `dataset_record_marks` (`dataset_id`);