package main

import (
	"context"
	"errors"
	"time"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/executor"
)

// preDrain is how long the drain workload measures before it drains.
const preDrain = 3 * time.Second

// drainWorkload runs 3 embedded executors under s.drainRate every-1s jobs,
// drains one through the API, and counts from the store the runs routed
// to it before the request, while it was pending and after jobd
// acknowledged it (which must be none). The measured window runs from
// preDrain before the request to s.window after the acknowledgement.
func drainWorkload(ctx context.Context, o *options, s sizes) (Result, error) {
	window := s.window[workDrain]
	res := Result{Workload: workDrain, Jobs: s.drainRate, Rate: s.drainRate}
	o.logf("drain: 3 executors under %d runs/s; one drained, then %s observed", s.drainRate, window)
	p, err := newJobd(o, workDrain)
	if err != nil {
		return res, err
	}
	defer p.cleanup()
	if _, err := p.start(ctx); err != nil {
		return res, err
	}
	rec := &lagRecorder{}
	execs := names("bench", 3)
	fl, err := startFleet(ctx, p, execs, o.slots, func(a *executor.Agent) {
		a.Handle(handlerNoop, rec.noop)
	})
	if err != nil {
		return res, err
	}
	defer fl.cleanup()
	if err := p.waitOnline(ctx, len(execs)); err != nil {
		return res, err
	}
	setup := time.Now()
	if err := p.applyJobs(ctx, everySecondJobs("d-", s.drainRate, setup)); err != nil {
		return res, err
	}
	res.SetupS = time.Since(setup).Seconds()

	from := time.Now().Add(s.warmup).Truncate(time.Second).Add(time.Second)
	rec.window(from, from.Add(time.Hour)) // its end is set after the drain
	if err := sleepUntil(ctx, from); err != nil {
		return res, err
	}
	cpu0, err := markCPU(p)
	if err != nil {
		return res, err
	}
	// Round robin is per job: by now every job has fired on every
	// executor, and goes on doing so.
	if err := sleepCtx(ctx, preDrain); err != nil {
		return res, err
	}
	target := execs[len(execs)-1]
	id, err := p.executorID(ctx, target)
	if err != nil {
		return res, err
	}
	fig := &DrainFigures{Executor: target}
	res.Drain = fig
	reqAt := time.Now()
	if _, err := p.client.ExecutorDrain(ctx, id, api.DrainRequest{Timeout: api.Duration(30 * time.Second), OnTimeout: api.DrainRequeue}); err != nil {
		return res, err
	}
	ackAt := time.Now()
	fig.AckMs = msOf(ackAt.Sub(reqAt))
	o.logf("drain: %s drained, acknowledged after %.1fms", target, fig.AckMs)

	to := ackAt.Add(window)
	rec.window(from, to)
	if err := sleepUntil(ctx, to); err != nil {
		return res, err
	}
	cpu1, err := markCPU(p)
	if err != nil {
		return res, err
	}
	if at, ok := fl.exitedAt(target); ok {
		fig.DrainedMs = ptr(msOf(at.Sub(ackAt)))
	}
	if err := sleepCtx(ctx, startGrace); err != nil {
		return res, err
	}
	last, err := sampleProc(p.pid())
	if err != nil {
		return res, err
	}
	if err := errors.Join(fl.stop(), p.stop()); err != nil {
		return res, err
	}
	m := measurement{p: p, from: from, to: to, cpu0: cpu0, cpu1: cpu1, last: last}
	res.WindowS = to.Sub(from).Seconds()
	if err := res.fillCommon(ctx, m, rec); err != nil {
		return res, err
	}

	db, err := openSQL(p.dbPath())
	if err != nil {
		return res, err
	}
	defer db.Close()
	all, _, err1 := routedTo(ctx, db, id, time.UnixMilli(0))
	afterReq, _, err2 := routedTo(ctx, db, id, reqAt)
	afterAck, _, err3 := routedTo(ctx, db, id, ackAt)
	if err := errors.Join(err1, err2, err3); err != nil {
		return res, err
	}
	fig.RoutedBefore, fig.RoutedDuringRequest, fig.RoutedAfterAck = all-afterReq, afterReq-afterAck, afterAck
	return res, nil
}
