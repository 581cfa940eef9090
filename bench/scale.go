package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/executor"
)

// firstFireTimeout bounds the wait for the first handler start after
// jobd starts.
const firstFireTimeout = time.Minute

// scaleWorkload defines s.scaleJobs sparse jobs (cron, once a day at a
// random minute) and s.scaleFast every-1s jobs straight in the store, then
// starts jobd (cold), restarts it with its executors running, and measures
// the restarted jobd: time to ready and to the first handler start, RSS
// once settled and at its peak, trigger lag in the window.
func scaleWorkload(ctx context.Context, o *options, s sizes) (Result, error) {
	window := s.window[workScale]
	res := Result{Workload: workScale, Jobs: s.scaleJobs + s.scaleFast, WindowS: window.Seconds()}
	fig := &ScaleFigures{}
	res.Scale = fig
	o.logf("scale: %d sparse jobs + %d every-1s jobs; %s window after a restart (+%s warm-up)", s.scaleJobs, s.scaleFast, window, s.warmup)
	p, err := newJobd(o, workScale)
	if err != nil {
		return res, err
	}
	defer p.cleanup()

	setup := time.Now()
	if err := migrate(ctx, p.dbPath()); err != nil {
		return res, err
	}
	rng := rand.New(rand.NewPCG(1, 2)) // the same schedules every time
	var probe api.JobSpec
	sparse := func(i int) api.JobSpec {
		spec := api.JobSpec{Name: fmt.Sprintf("sparse-%07d", i), Group: benchGroup,
			Cron: fmt.Sprintf("%d %d * * *", rng.IntN(60), rng.IntN(24)), Handler: handlerNoop}
		if i == 0 {
			probe = spec
		}
		return spec
	}
	if err := insertJobs(ctx, p.dbPath(), s.scaleJobs, sparse); err != nil {
		return res, err
	}
	// The every-1s jobs go last, so their cursors are not behind when jobd
	// starts.
	fast := everySecondJobs("fast-", s.scaleFast, time.Now())
	for i := range fast {
		fast[i].Misfire = ""
	}
	if err := insertJobs(ctx, p.dbPath(), len(fast), func(i int) api.JobSpec { return fast[i] }); err != nil {
		return res, err
	}
	res.SetupS = time.Since(setup).Seconds()
	fig.SeedS = res.SetupS
	o.logf("scale: %d jobs written in %.1fs (%.0f/s)", res.Jobs, res.SetupS, float64(res.Jobs)/res.SetupS)

	// Cold start: the executors start once jobd is ready.
	rec := &lagRecorder{}
	ready, err := p.start(ctx)
	if err != nil {
		return res, err
	}
	fig.ColdReadyS = ready.Seconds()
	first := rec.firstStartAfter(p.execAt)
	fl, err := startFleet(ctx, p, names("bench", o.executors), o.slots, func(a *executor.Agent) {
		a.Handle(handlerNoop, rec.noop)
	})
	if err != nil {
		return res, err
	}
	defer fl.cleanup()
	at, err := waitFirst(ctx, first)
	if err != nil {
		return res, fmt.Errorf("cold start: %w", err)
	}
	fig.ColdFirstFireS = at.Sub(p.execAt).Seconds()
	cold, err := sampleProc(p.pid())
	if err != nil {
		return res, err
	}
	fig.ColdPeakRSSMB = cold.peakMB
	o.logf("scale: cold start ready in %.2fs, first fire after %.2fs", fig.ColdReadyS, fig.ColdFirstFireS)
	if err := p.waitOnline(ctx, o.executors); err != nil {
		return res, err
	}
	if err := sleepCtx(ctx, 2*time.Second); err != nil {
		return res, err
	}

	// Restart, with the executors running: they reconnect by themselves.
	if err := p.stop(); err != nil {
		return res, err
	}
	first = rec.firstStartAfter(time.Now())
	if ready, err = p.start(ctx); err != nil {
		return res, err
	}
	fig.RestartReadyS = ready.Seconds()
	if at, err = waitFirst(ctx, first); err != nil {
		return res, fmt.Errorf("restart: %w", err)
	}
	fig.RestartFirstFireS = at.Sub(p.execAt).Seconds()
	o.logf("scale: restart ready in %.2fs, first fire after %.2fs", fig.RestartReadyS, fig.RestartFirstFireS)

	from := p.execAt.Add(s.warmup).Truncate(time.Second).Add(time.Second)
	to := from.Add(window)
	settleAt := p.execAt.Add(s.settle)
	if settleAt.After(to) {
		settleAt = to
	}
	settled := make(chan error, 1)
	go func() {
		err := sleepUntil(ctx, settleAt)
		if err == nil {
			var ps procSample
			ps, err = sampleProc(p.pid())
			fig.RSSSettledMB, fig.RSSSettledAtS = ps.rssMB, time.Since(p.execAt).Seconds()
		}
		settled <- err
	}()
	m, err := measureWindow(ctx, p, rec, from, to)
	if err := errors.Join(err, <-settled); err != nil {
		return res, err
	}
	if err := checkSeededSpec(ctx, p.client, probe); err != nil {
		return res, err
	}
	if err := errors.Join(fl.stop(), p.stop()); err != nil {
		return res, err
	}
	return res, res.fillCommon(ctx, m, rec)
}

// waitFirst waits for a time on ch.
func waitFirst(ctx context.Context, ch <-chan time.Time) (time.Time, error) {
	select {
	case t := <-ch:
		return t, nil
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	case <-time.After(firstFireTimeout):
		return time.Time{}, fmt.Errorf("no handler started within %s", firstFireTimeout)
	}
}
