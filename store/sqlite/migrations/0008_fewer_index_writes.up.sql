-- Fewer index entries written per trigger and per run, the store's main
-- cost at high trigger rates: each index keyed by job takes a write in a
-- page of its own per row, where the tables and the time-ordered indexes
-- append.
--
-- One unique key per trigger replaces the two partial unique indexes and
-- triggers_job: (job, scheduled_at) stays unique among schedule triggers
-- and among replay triggers; a manual trigger gets a nonce that sets it
-- apart from the other manual triggers of the same job and time. The key
-- also serves TriggerList and the cascade from jobs.
ALTER TABLE triggers ADD COLUMN nonce INTEGER NOT NULL DEFAULT 0;
UPDATE triggers SET nonce = id WHERE origin = 'manual';
CREATE UNIQUE INDEX triggers_key ON triggers (job_id, scheduled_at, origin, nonce);
DROP INDEX triggers_schedule_uq;
DROP INDEX triggers_replay_uq;
DROP INDEX triggers_job;
-- Runs of one job in one state are found through runs_job (or runs_state)
-- and their state, which keeps state changes from rewriting a per-job
-- index.
DROP INDEX runs_job_state;
