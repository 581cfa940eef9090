-- Parameters given to one run (a manual trigger's --param), as a JSON
-- object; NULL when the run only has its job's parameters.
ALTER TABLE runs ADD COLUMN params TEXT;
