package daemon

import (
	"encoding/json"
	"time"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/schedule"
	"github.com/jobd/jobd/store"
)

// jobPlan is what one materialisation pass decided for one job.
type jobPlan struct {
	next     time.Time
	triggers []*store.Trigger
	missed   []*store.MissedAppend
	// forced are scheduled times (unix ms) that fire however late they are:
	// the misfire policy chose them.
	forced map[int64]bool
	// settle are stored pending triggers that were late and did not make
	// the cut: they are settled as missed.
	settle []*store.FireParams
	// fireLate are stored pending triggers that were late and fire.
	fireLate []*store.Trigger
}

// lateRange is the part of a job's schedule from its cursor to the misfire
// cutoff that was never stored: count times, the first few of them listed.
type lateRange struct {
	count int64
	first []time.Time
	last  time.Time
}

// scheduleSnapshot is the schedule part of a spec, kept with missed rows so
// their times can be listed again after the job's schedule changed.
type scheduleSnapshot struct {
	Cron   string        `json:"cron,omitempty"`
	Every  *api.Duration `json:"every,omitempty"`
	Anchor *api.Time     `json:"anchor,omitempty"`
	Delay  *api.Duration `json:"delay,omitempty"`
	At     *api.Time     `json:"at,omitempty"`
	Manual bool          `json:"manual,omitempty"`
	TZ     string        `json:"tz,omitempty"`
}

func snapshotOf(spec *api.JobSpec) string {
	b, _ := json.Marshal(scheduleSnapshot{Cron: spec.Cron, Every: spec.Every, Anchor: spec.Anchor,
		Delay: spec.Delay, At: spec.At, Manual: spec.Manual, TZ: spec.TZ})
	return string(b)
}

func parseSnapshot(s string) (schedule.Schedule, error) {
	var snap scheduleSnapshot
	if err := json.Unmarshal([]byte(s), &snap); err != nil {
		return nil, err
	}
	spec := api.JobSpec{Cron: snap.Cron, Every: snap.Every, Anchor: snap.Anchor, Delay: snap.Delay,
		At: snap.At, Manual: snap.Manual, TZ: snap.TZ}
	return compileSchedule(&spec)
}

// missedAppend builds a missed record of count times from..to of job.
func missedAppend(j *compiledJob, from, to time.Time, count int64, reason string) *store.MissedAppend {
	prev, _ := schedule.Prev(j.sched, from)
	return &store.MissedAppend{
		Missed: &store.Missed{JobID: j.row.ID, JobName: j.row.Name, From: from, To: to,
			Count: count, Reason: reason, Schedule: snapshotOf(&j.spec)},
		MergeAfter: prev,
	}
}

// planJob decides what to store for job j at now: its late times (stored
// pending triggers in lateP, and the never-stored range from its cursor to
// now minus the misfire threshold) per the misfire policy, then the pending
// triggers up to horizon, and the new cursor.
func planJob(j *compiledJob, now, horizon time.Time, lateP []*store.Trigger) jobPlan {
	p := jobPlan{forced: map[int64]bool{}}
	cutoff := now.Add(-j.threshold())
	cursor := j.row.NextFireAt
	policy, maxCatchUp := j.spec.Misfire, j.spec.MaxCatchUp
	if maxCatchUp <= 0 {
		maxCatchUp = DefaultMaxCatchUp
	}

	var r lateRange
	if !cursor.IsZero() && !cursor.After(cutoff) {
		more, n := schedule.Times(j.sched, cursor, cutoff, maxCatchUp)
		r.count = 1 + n
		r.first = append([]time.Time{cursor}, more...)
		r.last = cursor
		if n > 0 {
			r.last, _ = schedule.Prev(j.sched, cutoff.Add(time.Millisecond))
		}
	}
	p.decideLate(j, policy, maxCatchUp, lateP, r)

	// On-time triggers, from the first time after the late range.
	start := cursor
	if r.count > 0 {
		start = time.Time{}
		if t, ok := j.sched.Next(r.last); ok {
			start = t
		}
	}
	if !start.IsZero() && !start.After(horizon) {
		times, _ := schedule.Times(j.sched, start, horizon, 1<<20)
		for _, t := range append([]time.Time{start}, times...) {
			p.triggers = append(p.triggers, &store.Trigger{JobID: j.row.ID, ScheduledAt: t,
				Origin: api.OriginSchedule, State: store.TriggerPending, CreatedAt: now})
		}
	}
	// The new cursor: the first time after the horizon, or none.
	switch {
	case start.IsZero():
		p.next = time.Time{}
	case start.After(horizon):
		p.next = start
	default:
		if t, ok := j.sched.Next(horizon); ok {
			p.next = t
		}
	}
	return p
}

// decideLate applies the misfire policy to the late times of a job: the
// stored ones in lateP (oldest first) followed by the range r.
func (p *jobPlan) decideLate(j *compiledJob, policy string, maxCatchUp int, lateP []*store.Trigger, r lateRange) {
	total := int64(len(lateP)) + r.count
	if total == 0 {
		return
	}
	// fire[i] for i < len(lateP) says whether lateP[i] fires; firedR is how
	// many of r's first times fire; lastR whether r's last time fires.
	fireP := make([]bool, len(lateP))
	var firedR int64
	lastR := false
	reason := api.MissedDown
	switch policy {
	case api.MisfireSkip:
	case api.MisfireFireOnce:
		reason = api.MissedCoalesced
		if r.count > 0 {
			lastR = true
		} else {
			fireP[len(lateP)-1] = true
		}
	case api.MisfireCatchUp:
		reason = api.MissedCapped
		budget := int64(maxCatchUp)
		for i := range lateP {
			if budget > 0 {
				fireP[i] = true
				budget--
			}
		}
		firedR = min(budget, r.count)
	}
	for i, t := range lateP {
		if fireP[i] {
			p.fireLate = append(p.fireLate, t)
			continue
		}
		p.settle = append(p.settle, &store.FireParams{TriggerID: t.ID, State: store.TriggerMissed,
			FireAt: t.ScheduledAt, Missed: missedAppend(j, t.ScheduledAt, t.ScheduledAt, 1, reason)})
	}
	if r.count == 0 {
		return
	}
	fire := func(t time.Time) {
		p.triggers = append(p.triggers, &store.Trigger{JobID: j.row.ID, ScheduledAt: t,
			Origin: api.OriginSchedule, State: store.TriggerPending})
		p.forced[t.UnixMilli()] = true
	}
	for i := int64(0); i < firedR; i++ {
		fire(r.first[i])
	}
	rest := r.count - firedR
	if lastR {
		rest--
	}
	if rest > 0 {
		from := r.first[0]
		if firedR > 0 {
			from = r.first[firedR]
		}
		to := r.last
		if lastR {
			to, _ = schedule.Prev(j.sched, r.last)
		}
		p.missed = append(p.missed, missedAppend(j, from, to, rest, reason))
	}
	if lastR {
		fire(r.last)
	}
}
