package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/executor"
)

// startGrace is how long after the window a workload waits before it
// stops, so that the triggers scheduled at its very end still start.
const startGrace = 2 * time.Second

// rateWorkload is steady and burst: rate every-1s jobs whose anchors are
// spread evenly over the second, so that rate triggers fire per second.
func rateWorkload(ctx context.Context, o *options, name string, rate int, s sizes) (Result, error) {
	window := s.window[name]
	res := Result{Workload: name, Rate: rate, Jobs: rate, WindowS: window.Seconds()}
	o.logf("%s: %d triggers/s for %s (+%s warm-up)", name, rate, window, s.warmup)
	p, err := newJobd(o, name)
	if err != nil {
		return res, err
	}
	defer p.cleanup()
	if _, err := p.start(ctx); err != nil {
		return res, err
	}
	rec := &lagRecorder{}
	fl, err := startFleet(ctx, p, names("bench", o.executors), o.slots, func(a *executor.Agent) {
		a.Handle(handlerNoop, rec.noop)
	})
	if err != nil {
		return res, err
	}
	defer fl.cleanup()
	if err := p.waitOnline(ctx, o.executors); err != nil {
		return res, err
	}

	setup := time.Now()
	if err := p.applyJobs(ctx, everySecondJobs("r", rate, setup)); err != nil {
		return res, err
	}
	res.SetupS = time.Since(setup).Seconds()
	o.logf("%s: %d jobs created in %.1fs", name, rate, res.SetupS)

	from := time.Now().Add(s.warmup).Truncate(time.Second).Add(time.Second)
	m, err := measureWindow(ctx, p, rec, from, from.Add(window))
	if err != nil {
		return res, err
	}
	if err := errors.Join(fl.stop(), p.stop()); err != nil {
		return res, err
	}
	return res, res.fillCommon(ctx, m, rec)
}

// everySecondJobs declares n handler jobs firing every second, their
// anchors spread evenly over the second that starts at base.
func everySecondJobs(prefix string, n int, base time.Time) []api.JobSpec {
	base = base.Truncate(time.Second)
	every := api.Duration(time.Second)
	specs := make([]api.JobSpec, n)
	for i := range specs {
		anchor := api.NewTime(base.Add(time.Duration(i) * time.Second / time.Duration(n)).Truncate(time.Millisecond))
		specs[i] = api.JobSpec{Name: fmt.Sprintf("%s%07d", prefix, i), Group: benchGroup, Every: &every, Anchor: &anchor,
			Handler: handlerNoop, Misfire: api.MisfireSkip}
	}
	return specs
}

// measurement is a measured window of a running jobd.
type measurement struct {
	p          *jobdProc
	from, to   time.Time
	cpu0, cpu1 cpuMark
	// last is jobd sampled startGrace after the window, just before it
	// stops.
	last procSample
}

// measureWindow makes [from, to) the window of rec, waits until its end
// and startGrace more, and samples jobd's CPU time at both ends.
func measureWindow(ctx context.Context, p *jobdProc, rec *lagRecorder, from, to time.Time) (measurement, error) {
	m := measurement{p: p, from: from, to: to}
	rec.window(from, to)
	if err := sleepUntil(ctx, from); err != nil {
		return m, err
	}
	var err error
	if m.cpu0, err = markCPU(p); err != nil {
		return m, err
	}
	if err := sleepUntil(ctx, to); err != nil {
		return m, err
	}
	if m.cpu1, err = markCPU(p); err != nil {
		return m, err
	}
	if err := sleepCtx(ctx, startGrace); err != nil {
		return m, err
	}
	m.last, err = sampleProc(p.pid())
	return m, err
}

// cpuMark is the CPU time used so far by jobd and by the harness, whose
// embedded SDK executors compete with jobd for the same cores.
type cpuMark struct{ jobd, harness time.Duration }

func markCPU(p *jobdProc) (cpuMark, error) {
	j, err := sampleProc(p.pid())
	if err != nil {
		return cpuMark{}, err
	}
	h, err := sampleProc(os.Getpid())
	return cpuMark{jobd: j.cpu, harness: h.cpu}, err
}

// setCPU sets the CPU figures of a window of secs seconds.
func (r *Result) setCPU(from, to cpuMark, secs float64) {
	r.JobdCPUSeconds = (to.jobd - from.jobd).Seconds()
	r.JobdCPUPercent = 100 * r.JobdCPUSeconds / secs
	r.HarnessCPUPercent = 100 * (to.harness - from.harness).Seconds() / secs
}

// fillCommon fills the figures every workload has, from the measurement,
// the recorder and the store of the stopped jobd.
func (r *Result) fillCommon(ctx context.Context, m measurement, rec *lagRecorder) error {
	w, err := readWindow(ctx, m.p, m.from, m.to)
	if err != nil {
		return err
	}
	secs := m.to.Sub(m.from).Seconds()
	r.Fired, r.Missed, r.RunsStored, r.StoreSizeMB = w.fired, w.missed, w.runs, w.storeSize
	r.TriggersPerSec = ptr(float64(w.fired) / secs)
	r.FireLag = latencyOf(w.fireLags)
	r.TriggerLag, r.Started, r.StartedTotal = rec.result()
	r.setCPU(m.cpu0, m.cpu1, secs)
	r.JobdPeakRSSMB = m.last.peakMB
	return nil
}
