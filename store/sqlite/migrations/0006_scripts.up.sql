-- Versions of script jobs' sources: the newest 30 per job are kept.
CREATE TABLE scripts (
	job_id     INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	version    INTEGER NOT NULL,
	source     TEXT    NOT NULL,
	sha256     TEXT    NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (job_id, version)
) WITHOUT ROWID;
