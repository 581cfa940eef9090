package daemon

import (
	"time"

	"github.com/jobd/jobd/store"
)

// NextArmed returns, for each job of ids with scheduled triggers armed in
// the look-ahead window, the earliest one. A job's stored cursor is the
// first time not yet armed, so the job's next fire is this time when there
// is one, else the cursor.
func (s *Scheduler) NextArmed(ids []int64) map[int64]time.Time {
	want := make(map[int64]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	out := make(map[int64]time.Time, len(ids))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.heap {
		if !want[e.jobID] || e.origin == store.OriginManual {
			continue
		}
		if t, ok := out[e.jobID]; !ok || e.at.Before(t) {
			out[e.jobID] = e.at
		}
	}
	return out
}

// nextFire is when job j fires next: its earliest armed trigger (from
// armed, as NextArmed returns), else its cursor.
func nextFire(j *compiledJob, armed map[int64]time.Time) time.Time {
	next := j.row.NextFireAt
	if t, ok := armed[j.row.ID]; ok && (next.IsZero() || t.Before(next)) {
		next = t
	}
	return next
}
