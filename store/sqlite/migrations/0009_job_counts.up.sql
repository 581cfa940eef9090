-- JobCount reads one row instead of counting every job (a million jobs
-- take seconds to count); SQL triggers keep it up to date.
CREATE TABLE job_counts (
	id     INTEGER PRIMARY KEY CHECK (id = 1),
	total  INTEGER NOT NULL,
	paused INTEGER NOT NULL
);
INSERT INTO job_counts (id, total, paused) SELECT 1, count(*), coalesce(sum(paused), 0) FROM jobs;
CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
	UPDATE job_counts SET total = total + 1, paused = paused + NEW.paused WHERE id = 1;
END;
CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
	UPDATE job_counts SET total = total - 1, paused = paused - OLD.paused WHERE id = 1;
END;
CREATE TRIGGER jobs_count_paused AFTER UPDATE OF paused ON jobs WHEN NEW.paused != OLD.paused BEGIN
	UPDATE job_counts SET paused = paused + NEW.paused - OLD.paused WHERE id = 1;
END;
