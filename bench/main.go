// Command bench measures jobd's trigger lag. For each rate it starts a real
// `jobd serve` on a temporary state dir, embeds SDK executors with a no-op
// handler, defines one every-1s job per trigger per second (anchors spread
// evenly over the second), lets it run, then prints per rate:
//
//   - fire lag: scheduled time → jobd settled the trigger (the trigger's
//     fired_at, read from the store after jobd stopped);
//   - start lag: scheduled time → the handler started on the executor;
//   - triggers per second achieved, jobd CPU seconds, peak RSS, store size.
//
// It prints a table and, with -json, JSON. Figures depend on the machine;
// nothing here is a pass/fail check.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/executor"
	"github.com/jobd/jobd/store"
	"github.com/jobd/jobd/store/sqlite"
)

type options struct {
	jobd      string
	rates     []int
	duration  time.Duration
	warmup    time.Duration
	executors int
	slots     int
	jsonOut   bool
	keep      bool
}

// Result is the figures of one workload.
type Result struct {
	Workload       string  `json:"workload"`
	Rate           int     `json:"rate"`
	Jobs           int     `json:"jobs"`
	DurationS      float64 `json:"duration_s"`
	Fired          int64   `json:"fired"`
	Missed         int64   `json:"missed"`
	TriggersPerSec float64 `json:"triggers_per_sec"`
	FireLagP50Ms   float64 `json:"fire_lag_p50_ms"`
	FireLagP99Ms   float64 `json:"fire_lag_p99_ms"`
	FireLagMaxMs   float64 `json:"fire_lag_max_ms"`
	StartLagP50Ms  float64 `json:"start_lag_p50_ms"`
	StartLagP99Ms  float64 `json:"start_lag_p99_ms"`
	StartLagMaxMs  float64 `json:"start_lag_max_ms"`
	Started        int     `json:"started"`
	JobdCPUSeconds float64 `json:"jobd_cpu_s"`
	JobdPeakRSSMB  float64 `json:"jobd_peak_rss_mb"`
	StoreSizeMB    float64 `json:"store_size_mb"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var o options
	var rates string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.jobd, "jobd", "bin/jobd", "path to the jobd binary")
	fs.StringVar(&rates, "rates", "1000,10000", "trigger rates to measure, per second")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "measured time per rate")
	fs.DurationVar(&o.warmup, "warmup", 5*time.Second, "time before measuring")
	fs.IntVar(&o.executors, "executors", 2, "SDK executors")
	fs.IntVar(&o.slots, "slots", 512, "slots per executor")
	fs.BoolVar(&o.jsonOut, "json", false, "print JSON after the table")
	fs.BoolVar(&o.keep, "keep", false, "keep the state dirs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, r := range strings.Split(rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n < 1 {
			return fmt.Errorf("-rates %q: want positive integers", rates)
		}
		o.rates = append(o.rates, n)
	}
	var results []Result
	for _, rate := range o.rates {
		fmt.Fprintf(os.Stderr, "bench: steady %d triggers/s for %s (+%s warm-up)...\n", rate, o.duration, o.warmup)
		res, err := steady(ctx, o, rate)
		if err != nil {
			return fmt.Errorf("rate %d: %w", rate, err)
		}
		results = append(results, res)
	}
	printTable(out, results)
	if o.jsonOut {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	return nil
}

func printTable(out io.Writer, rs []Result) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tRATE\tJOBS\tFIRED/S\tMISSED\tSTARTED\tFIRE p50/p99/max ms\tSTART p50/p99/max ms\tJOBD CPU s\tPEAK RSS MB\tSTORE MB")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%d\t%d\t%.2f / %.2f / %.2f\t%.2f / %.2f / %.2f\t%.1f\t%.1f\t%.1f\n",
			r.Workload, r.Rate, r.Jobs, r.TriggersPerSec, r.Missed, r.Started,
			r.FireLagP50Ms, r.FireLagP99Ms, r.FireLagMaxMs,
			r.StartLagP50Ms, r.StartLagP99Ms, r.StartLagMaxMs,
			r.JobdCPUSeconds, r.JobdPeakRSSMB, r.StoreSizeMB)
	}
	tw.Flush()
}

// jobdProc is a running jobd serve.
type jobdProc struct {
	cmd    *exec.Cmd
	dir    string
	socket string
	addr   string
	done   chan error
}

func startJobd(ctx context.Context, bin string) (*jobdProc, error) {
	dir, err := os.MkdirTemp("", "jdbench")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	p := &jobdProc{dir: dir, socket: filepath.Join(dir, "s"), addr: addr, done: make(chan error, 1)}
	p.cmd = exec.Command(bin, "serve", "--state-dir", dir, "--socket", p.socket, "--listen", addr, "--log-level", "warn")
	logf, err := os.Create(filepath.Join(dir, "jobd.log"))
	if err != nil {
		return nil, err
	}
	p.cmd.Stderr = logf
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start jobd: %w", err)
	}
	go func() { p.done <- p.cmd.Wait(); logf.Close() }()
	c := &api.Client{Socket: p.socket}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := c.Status(ctx); err == nil {
			return p, nil
		}
		if time.Now().After(deadline) {
			p.kill()
			return nil, errors.New("jobd did not answer within 10s (see " + filepath.Join(dir, "jobd.log") + ")")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *jobdProc) kill() { _ = p.cmd.Process.Kill(); <-p.done }

func (p *jobdProc) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		return err
	case <-time.After(15 * time.Second):
		p.kill()
		return errors.New("jobd did not stop within 15s of SIGTERM")
	}
}

// procStats reads CPU seconds and peak RSS of pid from /proc.
func procStats(pid int) (cpu float64, peakMB float64) {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i > 0 {
			f := strings.Fields(s[i+2:])
			if len(f) > 13 {
				ut, _ := strconv.ParseFloat(f[11], 64)
				st, _ := strconv.ParseFloat(f[12], 64)
				cpu = (ut + st) / 100 // USER_HZ is 100 on Linux
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "VmHWM:") {
				f := strings.Fields(line)
				kb, _ := strconv.ParseFloat(f[1], 64)
				peakMB = kb / 1024
			}
		}
	}
	return cpu, peakMB
}

// lagRecorder collects handler start lags after a start time.
type lagRecorder struct {
	mu    sync.Mutex
	from  time.Time
	until time.Time
	lags  []time.Duration
}

func (l *lagRecorder) record(scheduled time.Time) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if scheduled.Before(l.from) || !scheduled.Before(l.until) {
		return
	}
	l.lags = append(l.lags, now.Sub(scheduled))
}

func steady(ctx context.Context, o options, rate int) (Result, error) {
	res := Result{Workload: "steady", Rate: rate, Jobs: rate, DurationS: o.duration.Seconds()}
	p, err := startJobd(ctx, o.jobd)
	if err != nil {
		return res, err
	}
	defer func() {
		if !o.keep {
			os.RemoveAll(p.dir)
		}
	}()
	c := &api.Client{Socket: p.socket}

	rec := &lagRecorder{}
	exCtx, stopEx := context.WithCancel(ctx)
	var exWG sync.WaitGroup
	for i := 0; i < o.executors; i++ {
		a, err := executor.New(executor.Config{
			Servers: []string{"http://" + p.addr}, Group: "bench", Name: fmt.Sprintf("bench-%d", i),
			Slots: o.slots, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			p.kill()
			stopEx()
			return res, err
		}
		a.Handle("noop", func(ctx context.Context, r *executor.Run) error {
			rec.record(r.ScheduledAt)
			return nil
		})
		exWG.Add(1)
		go func() { defer exWG.Done(); _ = a.Run(exCtx) }()
	}

	// One job per trigger per second, anchors spread evenly over a second.
	base := time.Now().Truncate(time.Second)
	every := api.Duration(time.Second)
	specs := make([]api.JobSpec, rate)
	for i := range specs {
		anchor := api.NewTime(base.Add(time.Duration(i) * time.Second / time.Duration(rate)))
		specs[i] = api.JobSpec{Name: fmt.Sprintf("b%06d", i), Group: "bench", Every: &every, Anchor: &anchor,
			Handler: "noop", Misfire: api.MisfireSkip}
	}
	for i := 0; i < len(specs); i += 1000 {
		if _, err := c.Apply(ctx, api.ApplyRequest{Jobs: specs[i:min(i+1000, len(specs))]}); err != nil {
			p.kill()
			stopEx()
			return res, fmt.Errorf("create jobs: %w", err)
		}
	}
	start := time.Now().Add(o.warmup).Truncate(time.Second).Add(time.Second)
	end := start.Add(o.duration)
	rec.mu.Lock()
	rec.from, rec.until = start, end
	rec.mu.Unlock()
	select {
	case <-ctx.Done():
		p.kill()
		stopEx()
		return res, ctx.Err()
	case <-time.After(time.Until(end.Add(2 * time.Second))):
	}
	res.JobdCPUSeconds, res.JobdPeakRSSMB = procStats(p.cmd.Process.Pid)
	stopEx()
	exWG.Wait()
	if err := p.stop(); err != nil {
		return res, err
	}
	if fi, err := os.Stat(filepath.Join(p.dir, "jobd.db")); err == nil {
		res.StoreSizeMB = float64(fi.Size()) / (1 << 20)
		if wal, err := os.Stat(filepath.Join(p.dir, "jobd.db-wal")); err == nil {
			res.StoreSizeMB += float64(wal.Size()) / (1 << 20)
		}
	}
	fire, missed, err := fireLags(ctx, filepath.Join(p.dir, "jobd.db"), start, end)
	if err != nil {
		return res, err
	}
	res.Fired, res.Missed = int64(len(fire)), missed
	res.TriggersPerSec = float64(len(fire)) / o.duration.Seconds()
	res.FireLagP50Ms, res.FireLagP99Ms, res.FireLagMaxMs = percentiles(fire)
	rec.mu.Lock()
	res.Started = len(rec.lags)
	res.StartLagP50Ms, res.StartLagP99Ms, res.StartLagMaxMs = percentiles(rec.lags)
	rec.mu.Unlock()
	return res, nil
}

// fireLags reads fired_at - scheduled_at of every trigger scheduled in
// [from, to) from the stopped jobd's store, and counts missed times.
func fireLags(ctx context.Context, path string, from, to time.Time) ([]time.Duration, int64, error) {
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, 0, err
	}
	defer st.Close()
	var lags []time.Duration
	after := ""
	for {
		jobs, err := st.JobList(ctx, store.JobListParams{After: after, Limit: 1000})
		if err != nil {
			return nil, 0, err
		}
		for _, j := range jobs {
			ts, err := st.TriggerList(ctx, j.ID, from, to.Add(-time.Millisecond))
			if err != nil {
				return nil, 0, err
			}
			for _, t := range ts {
				if t.State == store.TriggerFired {
					lags = append(lags, t.FiredAt.Sub(t.ScheduledAt))
				}
			}
		}
		if len(jobs) < 1000 {
			break
		}
		after = jobs[len(jobs)-1].Name
	}
	ms, err := st.MissedList(ctx, store.MissedListParams{Since: from, Until: to})
	if err != nil {
		return nil, 0, err
	}
	var missed int64
	for _, m := range ms {
		missed += m.Count
	}
	return lags, missed, nil
}

func percentiles(ds []time.Duration) (p50, p99, maxV float64) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	at := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	return ms(at(0.50)), ms(at(0.99)), ms(ds[len(ds)-1])
}
