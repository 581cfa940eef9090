package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/executor"
)

// listWorkload stores s.listRuns ended runs of s.listJobs jobs (every 2
// minutes, so the runs reach back a week) straight in the store, starts jobd with two executors, and times the jobctl binary
// running each list command s.listReps times, from exec to exit.
func listWorkload(ctx context.Context, o *options, s sizes) (Result, error) {
	res := Result{Workload: workList, Jobs: s.listJobs}
	o.logf("list: %d runs of %d jobs; %d repetitions of each command", s.listRuns, s.listJobs, s.listReps)
	p, err := newJobd(o, workList)
	if err != nil {
		return res, err
	}
	defer p.cleanup()

	setup := time.Now()
	if err := migrate(ctx, p.dbPath()); err != nil {
		return res, err
	}
	specs := make([]api.JobSpec, s.listJobs)
	for i := range specs {
		specs[i] = api.JobSpec{Name: fmt.Sprintf("list-%02d", i), Group: benchGroup, Cron: "*/2 * * * *", Handler: handlerNoop}
	}
	if err := insertJobs(ctx, p.dbPath(), len(specs), func(i int) api.JobSpec { return specs[i] }); err != nil {
		return res, err
	}
	if err := seedRuns(ctx, p.dbPath(), specs, s.listRuns, 2*time.Minute); err != nil {
		return res, err
	}
	res.SetupS = time.Since(setup).Seconds()
	o.logf("list: %d runs written in %.1fs", s.listRuns, res.SetupS)

	if _, err := p.start(ctx); err != nil {
		return res, err
	}
	fl, err := startFleet(ctx, p, names("bench", 2), o.slots, func(a *executor.Agent) {
		a.Handle(handlerNoop, func(context.Context, *executor.Run) error { return nil })
	})
	if err != nil {
		return res, err
	}
	defer fl.cleanup()
	if err := p.waitOnline(ctx, 2); err != nil {
		return res, err
	}
	if err := checkSeededSpec(ctx, p.client, specs[0]); err != nil {
		return res, err
	}

	commands := [][]string{
		{"run", "list"},
		{"run", "list", "--job", specs[len(specs)/2].Name},
		{"run", "list", "--state", api.RunFailed},
		{"run", "list", "--limit", "1000"},
		{"job", "list"},
		{"missed", "list"},
		{"status"},
		{"executor", "list"},
	}
	cpu0, err := markCPU(p)
	if err != nil {
		return res, err
	}
	start := time.Now()
	for _, args := range commands {
		f := ListFigures{Command: "jobctl " + strings.Join(args, " ")}
		ds := make([]time.Duration, 0, s.listReps)
		for range s.listReps {
			d, out, err := timeJobctl(ctx, o.jobctl, p.socket, args)
			if err != nil {
				return res, err
			}
			ds = append(ds, d)
			f.Lines = bytes.Count(out, []byte("\n"))
		}
		f.Latency = *latencyOf(ds)
		res.List = append(res.List, f)
	}
	cpu1, err := markCPU(p)
	if err != nil {
		return res, err
	}
	last, err := sampleProc(p.pid())
	if err != nil {
		return res, err
	}
	res.WindowS = time.Since(start).Seconds()
	res.setCPU(cpu0, cpu1, res.WindowS)
	res.JobdPeakRSSMB = last.peakMB
	if err := errors.Join(fl.stop(), p.stop()); err != nil {
		return res, err
	}
	w, err := readWindow(ctx, p, start, start)
	if err != nil {
		return res, err
	}
	res.RunsStored, res.StoreSizeMB = w.runs, w.storeSize
	return res, nil
}

// timeJobctl runs jobctl against socket and returns how long it took, from
// exec to exit, and its output; a non-zero exit is an error.
func timeJobctl(ctx context.Context, bin, socket string, args []string) (time.Duration, []byte, error) {
	cmd := exec.CommandContext(ctx, bin, append([]string{"--socket", socket}, args...)...)
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return d, nil, fmt.Errorf("jobctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return d, stdout.Bytes(), nil
}
