-- Report idempotency keeps, per run attempt, the highest Seq applied
-- instead of one row per report: an executor sends the reports of a run
-- attempt in Seq order, so one at or below it is a duplicate, and applying
-- a report rewrites only its run's row. runs.report_seq is that of the
-- run's own attempt; run_report_seqs that of any other attempt an executor
-- reported under.
ALTER TABLE runs ADD COLUMN report_seq INTEGER NOT NULL DEFAULT 0;
UPDATE runs SET report_seq = coalesce((SELECT max(p.seq) FROM run_reports p
	WHERE p.run_id = runs.id AND p.attempt = runs.attempt), 0)
	WHERE id IN (SELECT run_id FROM run_reports);
CREATE TABLE run_report_seqs (
	run_id  INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	attempt INTEGER NOT NULL,
	seq     INTEGER NOT NULL,
	PRIMARY KEY (run_id, attempt)
) WITHOUT ROWID;
INSERT INTO run_report_seqs (run_id, attempt, seq)
	SELECT p.run_id, p.attempt, max(p.seq) FROM run_reports p JOIN runs r ON r.id = p.run_id
	WHERE p.attempt != r.attempt GROUP BY p.run_id, p.attempt;
DROP TABLE run_reports;
