// Command bench measures jobd against the performance targets of SPEC §7.
// Every workload starts a real `jobd serve` on a temporary state dir and
// SDK executors (embedded, no-op handlers) connected to it over TCP, then:
//
//   - steady: one every-1s job per trigger per second (1,000 by default,
//     or each of -rates), their anchors spread evenly over the second;
//   - burst: the same at 10,000 triggers per second;
//   - list: 100,000 runs stored (mixed states, 20 jobs); the real jobctl
//     binary times `run list` (default, --job, --state failed, --limit
//     1000), `job list`, `missed list`, `status` and `executor list`;
//   - scale: 1,000,000 jobs defined (cron, once a day at a random minute)
//     plus 100 every-1s jobs; jobd is started, then restarted with its
//     executors still running: time to /readyz, time to the first handler
//     start, RSS 10s after the restart and at its peak;
//   - failure: an executor process (this program re-executed) holding a
//     run is killed with SIGKILL: time until the run reads as lost, until
//     its retry starts on the other executor, and which runs were still
//     routed to the dead executor;
//   - drain: 3 executors under about 100 runs/s; one is drained through
//     the API; runs routed to it after the drain was acknowledged (0 when
//     jobd keeps its promise).
//
// For each workload it prints the trigger lag (scheduled time → handler
// start, measured in the handler), the triggers per second achieved, jobd's
// CPU time and peak RSS and the store size, then the workload's own
// figures, as tables and, with -json, as JSON. Big data sets (jobs, runs)
// are written straight into the SQLite file before jobd starts. -smoke
// scales every workload down to a few seconds through the same code. The
// state dirs are made under $TMPDIR. The jobd and jobctl binaries are
// -jobd and -jobctl (`make bench` builds them first) and must be built from
// the same tree as the harness, which writes their store. Figures depend on
// the machine; nothing here is a pass/fail check.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The workloads, in the order they run.
const (
	workSteady  = "steady"
	workList    = "list"
	workBurst   = "burst"
	workScale   = "scale"
	workFailure = "failure"
	workDrain   = "drain"
)

var allWorkloads = []string{workSteady, workList, workBurst, workScale, workFailure, workDrain}

// options are the command-line settings.
type options struct {
	jobd   string
	jobctl string
	// self is the program re-executed as a separate executor process
	// (failure workload); see childExecutorArg.
	self      string
	workloads []string
	// rates overrides the steady workload's rate; it runs once per rate.
	rates     []int
	duration  time.Duration // measured window; 0: each workload's default
	warmup    time.Duration // 0: the default (5s, 1s with -smoke)
	executors int
	slots     int
	smoke     bool
	scaleJobs int // 0: the default
	listRuns  int // 0: the default
	jsonOut   bool
	keep      bool
	// progress receives one line per step; never nil.
	progress io.Writer
}

func (o *options) logf(format string, args ...any) {
	fmt.Fprintf(o.progress, "bench: "+format+"\n", args...)
}

// sizes are the parameters of every workload, full size or smoke.
type sizes struct {
	steadyRate  int
	burstRate   int
	scaleJobs   int
	scaleFast   int // every-1s jobs among the scale jobs
	listRuns    int
	listJobs    int
	listReps    int
	failureReps int
	failureTick int // every-1s jobs routed across both executors
	drainRate   int
	window      map[string]time.Duration
	warmup      time.Duration
	// settle is when, after jobd's restart, scale samples its RSS.
	settle time.Duration
}

func (o *options) sizes() sizes {
	s := sizes{
		steadyRate: 1000, burstRate: 10_000, scaleJobs: 1_000_000, scaleFast: 100,
		listRuns: 100_000, listJobs: 20, listReps: 20, failureReps: 3, failureTick: 10, drainRate: 100,
		window: map[string]time.Duration{workSteady: time.Minute, workBurst: time.Minute,
			workScale: time.Minute, workDrain: 10 * time.Second},
		warmup: 5 * time.Second, settle: 10 * time.Second,
	}
	if o.smoke {
		s.steadyRate, s.burstRate, s.scaleJobs, s.scaleFast = 100, 1000, 10_000, 20
		s.listRuns, s.listReps, s.failureReps = 5000, 10, 1
		for w := range s.window {
			s.window[w] = 5 * time.Second
		}
		s.window[workDrain] = 3 * time.Second
		s.warmup, s.settle = time.Second, 5*time.Second
	}
	if o.scaleJobs > 0 {
		s.scaleJobs = o.scaleJobs
	}
	if o.listRuns > 0 {
		s.listRuns = o.listRuns
	}
	if o.duration > 0 {
		for w := range s.window {
			s.window[w] = o.duration
		}
	}
	if o.warmup > 0 {
		s.warmup = o.warmup
	}
	return s
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == childExecutorArg {
		os.Exit(childExecutorMain(os.Args[2:], os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// run parses args, runs the workloads and prints their figures to out.
func run(ctx context.Context, args []string, out, progress io.Writer) error {
	o, err := parseFlags(args, progress)
	if err != nil {
		return err
	}
	results, err := runWorkloads(ctx, o)
	printResults(out, results)
	if err != nil {
		return err
	}
	if o.jsonOut {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	return nil
}

func parseFlags(args []string, progress io.Writer) (*options, error) {
	o := &options{progress: progress}
	var workloads, rates string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(progress)
	fs.StringVar(&o.jobd, "jobd", "bin/jobd", "path to the jobd binary")
	fs.StringVar(&o.jobctl, "jobctl", "bin/jobctl", "path to the jobctl binary (list workload)")
	fs.StringVar(&workloads, "workloads", strings.Join(allWorkloads, ","), "workloads to run, comma-separated")
	fs.StringVar(&rates, "rates", "", "trigger rates per second of the steady workload, comma-separated (default 1000; 100 with -smoke)")
	fs.DurationVar(&o.duration, "duration", 0, "measured window of steady, burst and scale, and time observed after the drain is acknowledged (default 60s, 60s, 60s, 10s; 5s, 5s, 5s, 3s with -smoke)")
	fs.DurationVar(&o.warmup, "warmup", 0, "time before the measured window (default 5s; 1s with -smoke)")
	fs.IntVar(&o.executors, "executors", 2, "SDK executors of steady, burst and scale")
	fs.IntVar(&o.slots, "slots", 512, "slots per executor")
	fs.BoolVar(&o.smoke, "smoke", false, "scale every workload down to a few seconds (same code paths)")
	fs.IntVar(&o.scaleJobs, "scale-jobs", 0, "jobs defined by the scale workload (default 1,000,000; 10,000 with -smoke)")
	fs.IntVar(&o.listRuns, "list-runs", 0, "runs stored by the list workload (default 100,000; 5,000 with -smoke)")
	fs.BoolVar(&o.jsonOut, "json", false, "print JSON after the tables")
	fs.BoolVar(&o.keep, "keep", false, "keep the state dirs (their paths are printed)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, w := range strings.Split(workloads, ",") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		if !slices.Contains(allWorkloads, w) {
			return nil, fmt.Errorf("-workloads: unknown workload %q (want %s)", w, strings.Join(allWorkloads, ", "))
		}
		if !slices.Contains(o.workloads, w) {
			o.workloads = append(o.workloads, w)
		}
	}
	if len(o.workloads) == 0 {
		return nil, errors.New("-workloads: none given")
	}
	// Run them in the documented order, whatever the order given.
	slices.SortFunc(o.workloads, func(a, b string) int {
		return slices.Index(allWorkloads, a) - slices.Index(allWorkloads, b)
	})
	for _, r := range strings.Split(rates, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		n, err := strconv.Atoi(r)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-rates %q: want positive integers", rates)
		}
		o.rates = append(o.rates, n)
	}
	if o.executors < 1 || o.slots < 1 {
		return nil, errors.New("-executors and -slots must be at least 1")
	}
	if o.duration < 0 || o.warmup < 0 {
		return nil, errors.New("-duration and -warmup must not be negative")
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this program to re-execute: %w", err)
	}
	o.self = self
	return o, nil
}

// runWorkloads runs the workloads of o in order and returns the results
// of those that completed; it stops at the first error.
func runWorkloads(ctx context.Context, o *options) ([]Result, error) {
	for _, bin := range []string{o.jobd, o.jobctl} {
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("%w (build it with `make build`, or point -jobd/-jobctl at it)", err)
		}
	}
	s := o.sizes()
	var results []Result
	add := func(r Result, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", r.Workload, err)
		}
		results = append(results, r)
		return nil
	}
	for _, w := range o.workloads {
		var err error
		switch w {
		case workSteady:
			rates := o.rates
			if len(rates) == 0 {
				rates = []int{s.steadyRate}
			}
			for _, rate := range rates {
				if err = add(rateWorkload(ctx, o, workSteady, rate, s)); err != nil {
					break
				}
			}
		case workBurst:
			err = add(rateWorkload(ctx, o, workBurst, s.burstRate, s))
		case workList:
			err = add(listWorkload(ctx, o, s))
		case workScale:
			err = add(scaleWorkload(ctx, o, s))
		case workFailure:
			err = add(failureWorkload(ctx, o, s))
		case workDrain:
			err = add(drainWorkload(ctx, o, s))
		}
		if err != nil {
			return results, err
		}
	}
	return results, nil
}
