-- Run output becomes an append-only list of chunks, one per log report, so
-- appending never rewrites what is stored and a reader can follow a live
-- run from a byte offset. runs.output_size counts the stored bytes.
CREATE TABLE run_log (
	id     INTEGER PRIMARY KEY,
	run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	data   BLOB    NOT NULL
);
CREATE INDEX run_log_run ON run_log (run_id, id);
ALTER TABLE runs ADD COLUMN output_size INTEGER NOT NULL DEFAULT 0;
INSERT INTO run_log (run_id, data) SELECT run_id, CAST(output AS BLOB) FROM run_output;
UPDATE runs SET output_size = (SELECT length(CAST(output AS BLOB)) FROM run_output WHERE run_output.run_id = runs.id)
	WHERE id IN (SELECT run_id FROM run_output);
DROP TABLE run_output;
