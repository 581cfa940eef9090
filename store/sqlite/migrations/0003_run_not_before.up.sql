-- A retry waits for its backoff: a pending run is not dispatched before
-- not_before (unix ms; NULL = at once).
ALTER TABLE runs ADD COLUMN not_before INTEGER;
