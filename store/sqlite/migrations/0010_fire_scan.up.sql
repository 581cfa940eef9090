-- fire_scan_at bounds the scan for a job's last fire (see lastFireSQL in
-- jobs.go): every trigger of the job scheduled before it is accounted for
-- in last_fire_at, or settles later and then writes last_fire_at itself.
-- The materialiser moves it to the job's newest settled trigger, so missed
-- triggers (which never move last_fire_at) are scanned once, not on every
-- read and cursor update after.
ALTER TABLE jobs ADD COLUMN fire_scan_at INTEGER;
