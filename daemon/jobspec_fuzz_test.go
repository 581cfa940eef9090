package daemon

import (
	"encoding/json"
	"testing"

	"github.com/jobd/jobd/api"
)

// FuzzNormalizeSpec feeds arbitrary JSON job specs to the validator: it
// must never panic, and a spec it accepts must be accepted again unchanged
// (normalizing is idempotent), with a schedule that renders.
func FuzzNormalizeSpec(f *testing.F) {
	for _, seed := range []string{
		`{"name":"a","group":"g","cron":"*/5 * * * * *","command":["true"]}`,
		`{"name":"b","every":"1h","anchor":"2026-01-01T08:10:00Z","script":"echo hi","interpreter":"bash"}`,
		`{"name":"c","delay":"30s","http":{"url":"http://x/","method":"post"}}`,
		`{"name":"d","at":"2030-01-01T00:00:00Z","handler":"h","tz":"Europe/Paris"}`,
		`{"name":"e","manual":true,"command":["x"],"misfire":"catch_up","max_catch_up":3,"overlap":"queue"}`,
		`{"name":"f","cron":"0 0 31 4 *","command":["x"]}`,
		`{"name":"g","every":"0s","command":["x"]}`,
		`{"name":"UPPER","cron":"@daily","command":["x"]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var spec api.JobSpec
		if err := json.Unmarshal(data, &spec); err != nil {
			return
		}
		norm, sched, err := normalizeSpec(spec)
		if err != nil {
			return
		}
		_ = sched.String()
		again, _, err := normalizeSpec(norm)
		if err != nil {
			t.Fatalf("normalized spec rejected: %v\n%+v", err, norm)
		}
		if !specEqual(norm, again) {
			t.Fatalf("normalizing is not idempotent:\n%+v\n%+v", norm, again)
		}
	})
}
