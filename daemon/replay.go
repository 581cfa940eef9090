package daemon

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/schedule"
	"github.com/jobd/jobd/store"
)

// replayMax bounds the triggers one replay may fire.
const replayMax = 1_000_000

// replayListMax bounds the triggers a replay answer lists.
const replayListMax = 1000

// Replay fires recorded missed triggers again, keeping their scheduled
// times, or lists them on a dry run. Paused jobs are left out. A missed row
// that grows while the replay is planned makes it plan again.
func (s *Scheduler) Replay(ctx context.Context, req api.ReplayRequest) (api.ReplayResponse, error) {
	for attempt := 1; ; attempt++ {
		resp, err := s.replayOnce(ctx, req)
		if !errors.Is(err, store.ErrConflict) || attempt == 3 {
			return resp, err
		}
	}
}

func (s *Scheduler) replayOnce(ctx context.Context, req api.ReplayRequest) (api.ReplayResponse, error) {
	if !req.Since.IsZero() && !req.Until.IsZero() && req.Until.Before(req.Since.Time) {
		return api.ReplayResponse{}, fieldErr("until", "is before since")
	}
	if req.Job != "" {
		if _, err := s.store.JobGet(ctx, req.Job); err != nil {
			return api.ReplayResponse{}, fmt.Errorf("replay job %s: %w", req.Job, err)
		}
	}
	s.opMu.Lock()
	defer s.opMu.Unlock()
	rows, err := s.store.MissedList(ctx, store.MissedListParams{JobName: req.Job, Since: req.Since.Time, Until: req.Until.Time})
	if err != nil {
		return api.ReplayResponse{}, fmt.Errorf("list missed: %w", err)
	}
	lo, hi := req.Since.Time, req.Until.Time
	var p store.ReplayParams
	resp := api.ReplayResponse{DryRun: req.DryRun, Triggers: []api.NextTrigger{}}
	type pick struct {
		row *store.Missed
		at  time.Time
	}
	latest := map[int64]pick{}
	jobs := map[int64]*compiledJob{}
	for _, m := range rows {
		j, ok := jobs[m.JobID]
		if !ok {
			j, err = s.jobByID(ctx, m.JobID)
			if err != nil || j.row.Paused {
				j = nil
			}
			jobs[m.JobID] = j
		}
		if j == nil {
			continue
		}
		sched, err := parseSnapshot(m.Schedule)
		if err != nil {
			s.log.Warn("missed row with an unreadable schedule", "missed", m.ID, "err", err)
			continue
		}
		from, to := m.From, m.To
		if !lo.IsZero() && lo.After(from) {
			from = lo
		}
		if !hi.IsZero() && hi.Before(to) {
			to = hi
		}
		times := missedTimes(sched, m, from, to)
		if len(times) == 0 {
			continue
		}
		if req.Latest {
			if cur, ok := latest[m.JobID]; !ok || times[len(times)-1].After(cur.at) {
				latest[m.JobID] = pick{row: m, at: times[len(times)-1]}
			}
			continue
		}
		if resp.Count+int64(len(times)) > replayMax {
			return api.ReplayResponse{}, fieldErr("since", "more than %d triggers match: narrow the range with --since/--until or use --latest", replayMax)
		}
		resp.Count += int64(len(times))
		p.Delete = append(p.Delete, m)
		p.Insert = append(p.Insert, remainders(sched, m, times[0], times[len(times)-1])...)
		for _, t := range times {
			p.Triggers = append(p.Triggers, &store.Trigger{JobID: m.JobID, ScheduledAt: t, Origin: api.OriginReplay, State: store.TriggerPending})
		}
	}
	for _, pk := range latest {
		sched, _ := parseSnapshot(pk.row.Schedule)
		resp.Count++
		p.Delete = append(p.Delete, pk.row)
		p.Insert = append(p.Insert, remainders(sched, pk.row, pk.at, pk.at)...)
		p.Triggers = append(p.Triggers, &store.Trigger{JobID: pk.row.JobID, ScheduledAt: pk.at, Origin: api.OriginReplay, State: store.TriggerPending})
	}
	sort.Slice(p.Triggers, func(a, b int) bool { return p.Triggers[a].ScheduledAt.Before(p.Triggers[b].ScheduledAt) })
	for _, t := range p.Triggers {
		if len(resp.Triggers) >= replayListMax {
			break
		}
		resp.Triggers = append(resp.Triggers, api.NextTrigger{Job: jobs[t.JobID].row.Name, ScheduledAt: api.NewTime(t.ScheduledAt)})
	}
	if req.DryRun || len(p.Triggers) == 0 {
		return resp, nil
	}
	now := s.clock.Now()
	for _, t := range p.Triggers {
		t.CreatedAt = now
	}
	inserted, err := s.store.MissedReplay(ctx, p)
	if err != nil {
		return api.ReplayResponse{}, fmt.Errorf("store replay: %w", err)
	}
	s.mu.Lock()
	for _, t := range inserted {
		s.armLocked(s.stateLocked(jobs[t.JobID]), t, true)
	}
	s.mu.Unlock()
	s.signal(s.wake)
	resp.Fired = int64(len(inserted))
	s.log.Info("replayed missed triggers", "count", len(inserted), LogKeyJob, req.Job)
	return resp, nil
}

// missedTimes lists the scheduled times of a missed row within [from, to].
func missedTimes(sched schedule.Schedule, m *store.Missed, from, to time.Time) []time.Time {
	if from.After(to) {
		return nil
	}
	if m.Count == 1 || m.From.Equal(m.To) {
		if !m.From.Before(from) && !m.From.After(to) {
			return []time.Time{m.From}
		}
		return nil
	}
	var out []time.Time
	if !m.From.Before(from) {
		out = append(out, m.From)
	}
	start := from.Add(-time.Millisecond)
	if len(out) > 0 {
		start = m.From
	}
	more, _ := schedule.Times(sched, start, to, replayMax)
	return append(out, more...)
}

// remainders returns what is left of m outside [first, last].
func remainders(sched schedule.Schedule, m *store.Missed, first, last time.Time) []*store.Missed {
	var out []*store.Missed
	if first.After(m.From) {
		prev, _ := schedule.Prev(sched, first)
		_, n := schedule.Times(sched, m.From, prev, 0)
		r := *m
		r.ID, r.To, r.Count = 0, prev, n+1
		out = append(out, &r)
	}
	if last.Before(m.To) {
		next, _ := sched.Next(last)
		_, n := schedule.Times(sched, next, m.To, 0)
		r := *m
		r.ID, r.From, r.Count = 0, next, n+1
		out = append(out, &r)
	}
	return out
}
