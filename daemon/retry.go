package daemon

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/store"
)

// Retry defaults.
const (
	DefaultBackoff    = time.Second
	DefaultBackoffMax = 10 * time.Minute
)

// retryable reports whether a run that ended in state may be retried: a
// failure, a timeout or a lost executor, not a kill or a skip.
func retryable(state string) bool {
	switch state {
	case api.RunFailed, api.RunTimedOut, api.RunLost:
		return true
	}
	return false
}

// backoffFor is the wait before attempt+1 after attempt failed: the
// job's backoff, doubled per attempt for the exponential policy (with
// equal jitter: half fixed, half random) and capped at backoff_max.
func backoffFor(spec *api.JobSpec, attempt int) time.Duration {
	base := DefaultBackoff
	if spec.Backoff != nil {
		base = spec.Backoff.D()
	}
	if spec.BackoffPolicy == api.BackoffFixed || base <= 0 {
		return base
	}
	maxD := DefaultBackoffMax
	if spec.BackoffMax != nil && spec.BackoffMax.D() > 0 {
		maxD = spec.BackoffMax.D()
	}
	d := base
	for i := 1; i < attempt && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	half := d / 2
	return half + rand.N(d-half+1)
}

// retryOf builds the next attempt of a run that ended, or nil if the job
// does not retry it (any more).
func retryOf(j *compiledJob, r *store.Run, now time.Time) *store.Run {
	if j == nil || !retryable(r.State) || r.Attempt > j.spec.Retries {
		return nil
	}
	return &store.Run{
		TriggerID: r.TriggerID, JobID: r.JobID, JobName: r.JobName, Attempt: r.Attempt + 1,
		State: api.RunPending, Origin: r.Origin, ScheduledAt: r.ScheduledAt, CreatedAt: now,
		Replay: r.Replay, ShardIndex: r.ShardIndex, ShardTotal: r.ShardTotal, Params: r.Params,
		NotBefore: now.Add(backoffFor(&j.spec, r.Attempt)).Truncate(time.Millisecond),
	}
}

// retry stores the next attempt of r and queues it, away from the executor
// r ran on if another can take it. It reports whether it did.
func (s *Scheduler) retry(ctx context.Context, j *compiledJob, r *store.Run) bool {
	next := retryOf(j, r, s.clock.Now())
	if next == nil {
		return false
	}
	if err := s.store.RunInsert(ctx, []*store.Run{next}); err != nil {
		s.log.Error("store retry", LogKeyRun, r.ID, LogKeyJob, r.JobName, "err", err)
		return false
	}
	s.mu.Lock()
	if js := s.jobs[r.JobID]; js != nil {
		js.active[next.ID] = next
	} else {
		js = s.stateLocked(j)
		js.active[next.ID] = next
	}
	s.mu.Unlock()
	s.log.Info("run retried", LogKeyRun, r.ID, LogKeyJob, r.JobName, "state", r.State,
		"attempt", next.Attempt, "not_before", next.NotBefore)
	s.disp.EnqueueRetry(ctx, j, next, r.ExecutorID)
	return true
}
