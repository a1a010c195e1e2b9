CREATE TABLE `preview_results` (
	`sandbox_id` integer NOT NULL,
	`job_id` integer NOT NULL,
	`profile_id` integer NOT NULL,
	PRIMARY KEY(`job_id`, `profile_id`)
);
