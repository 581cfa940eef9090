-- Retention deletes runs and settled triggers by age.
CREATE INDEX runs_finished ON runs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX triggers_settled ON triggers (fired_at) WHERE state != 'pending';
CREATE INDEX runs_trigger ON runs (trigger_id);
