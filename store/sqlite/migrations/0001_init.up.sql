-- jobd schema, SQLite. Times are INTEGER unix milliseconds, NULL for none.
-- AUTOINCREMENT keeps ids from being reused after a delete, so a run id an
-- executor still reports on, or a job id in history, never names another row.

-- groups lists executor groups. Executors create theirs by registering; no
-- group has to be declared first.
CREATE TABLE groups (
	name       TEXT    PRIMARY KEY,
	created_at INTEGER NOT NULL
);

CREATE TABLE jobs (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	name         TEXT    NOT NULL UNIQUE,
	grp          TEXT    NOT NULL,
	spec         BLOB    NOT NULL,
	paused       INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
	next_fire_at INTEGER,
	last_fire_at INTEGER,
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL
);
-- JobsDue: paused = 0 AND next_fire_at <= ? ORDER BY next_fire_at.
CREATE INDEX jobs_due ON jobs (next_fire_at) WHERE paused = 0 AND next_fire_at IS NOT NULL;
-- JobList by group, ordered by name.
CREATE INDEX jobs_grp_name ON jobs (grp, name);

-- triggers: one fire of a job at one scheduled time. A job's triggers go
-- with it (its runs stay, they carry what history needs).
CREATE TABLE triggers (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	job_id       INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	scheduled_at INTEGER NOT NULL,
	origin       TEXT    NOT NULL,
	state        TEXT    NOT NULL CHECK (state IN ('pending', 'fired', 'missed')),
	created_at   INTEGER NOT NULL,
	fired_at     INTEGER
);
-- The exactly-once keys: one scheduled and one replayed fire per (job, time).
CREATE UNIQUE INDEX triggers_schedule_uq ON triggers (job_id, scheduled_at) WHERE origin = 'schedule';
CREATE UNIQUE INDEX triggers_replay_uq ON triggers (job_id, scheduled_at) WHERE origin = 'replay';
-- TriggerList, JobUpdate's ClearPending and the cascade from jobs.
CREATE INDEX triggers_job ON triggers (job_id, scheduled_at);
-- TriggersPending.
CREATE INDEX triggers_pending ON triggers (scheduled_at) WHERE state = 'pending';

-- runs: history; no foreign key, a run outlives its job and trigger.
CREATE TABLE runs (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	trigger_id    INTEGER NOT NULL,
	job_id        INTEGER NOT NULL,
	job_name      TEXT    NOT NULL,
	attempt       INTEGER NOT NULL,
	state         TEXT    NOT NULL,
	origin        TEXT    NOT NULL,
	executor_id   TEXT    NOT NULL DEFAULT '',
	executor_name TEXT    NOT NULL DEFAULT '',
	scheduled_at  INTEGER,
	created_at    INTEGER NOT NULL,
	assigned_at   INTEGER,
	started_at    INTEGER,
	finished_at   INTEGER,
	exit_code     INTEGER,
	error         TEXT    NOT NULL DEFAULT '',
	replay        INTEGER NOT NULL DEFAULT 0 CHECK (replay IN (0, 1)),
	shard_index   INTEGER NOT NULL DEFAULT 0,
	shard_total   INTEGER NOT NULL DEFAULT 0
);
-- RunList newest first by job, by state, by both; RunsActive; RunCounts.
CREATE INDEX runs_job ON runs (job_name, id);
CREATE INDEX runs_state ON runs (state, id);
CREATE INDEX runs_job_state ON runs (job_name, state, id);

-- run_output keeps run output (capped) apart from runs, so that listing and
-- transitioning runs never reads or rewrites it.
CREATE TABLE run_output (
	run_id INTEGER PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
	output TEXT    NOT NULL
);

-- run_reports makes executor reports idempotent.
CREATE TABLE run_reports (
	run_id  INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	attempt INTEGER NOT NULL,
	seq     INTEGER NOT NULL,
	PRIMARY KEY (run_id, attempt, seq)
) WITHOUT ROWID;

-- missed: compact ranges of scheduled times that did not fire.
CREATE TABLE missed (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	job_name    TEXT    NOT NULL,
	from_at     INTEGER NOT NULL,
	to_at       INTEGER NOT NULL,
	count       INTEGER NOT NULL CHECK (count > 0),
	reason      TEXT    NOT NULL,
	schedule    TEXT    NOT NULL,
	recorded_at INTEGER NOT NULL
);
-- The merge lookup (newest row of a job and reason) and the cascade.
CREATE INDEX missed_merge ON missed (job_id, reason, to_at);
-- MissedList.
CREATE INDEX missed_list ON missed (job_name, from_at);

CREATE TABLE executors (
	id            TEXT    PRIMARY KEY,
	grp           TEXT    NOT NULL REFERENCES groups (name),
	name          TEXT    NOT NULL,
	host          TEXT    NOT NULL,
	labels        TEXT    NOT NULL DEFAULT '{}',
	version       TEXT    NOT NULL,
	slots         INTEGER NOT NULL,
	state         TEXT    NOT NULL,
	state_since   INTEGER NOT NULL,
	last_seen     INTEGER NOT NULL,
	registered_at INTEGER NOT NULL,
	UNIQUE (grp, name)
);
