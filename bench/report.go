package main

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is the figures of one workload. A nil pointer or slice is a
// figure that does not apply to the workload: "—" in the tables, null or
// absent in JSON.
type Result struct {
	Workload string `json:"workload"`
	// Jobs is how many jobs were defined.
	Jobs int `json:"jobs"`
	// Rate is the trigger rate of the every-1s jobs, per second.
	Rate int `json:"rate,omitempty"`
	// WindowS is the measured window, in seconds.
	WindowS float64 `json:"window_s"`
	// SetupS is the time taken to define the jobs (and runs) before the
	// window: through the API for steady, burst, failure and drain,
	// straight into the SQLite file for list and scale.
	SetupS float64 `json:"setup_s"`
	// Started counts handler starts of first attempts scheduled in the
	// window; StartedTotal counts every handler start.
	Started      int `json:"started"`
	StartedTotal int `json:"started_total"`
	// Fired counts the triggers scheduled in the window that jobd fired,
	// and Missed the scheduled times it recorded as missed there.
	Fired          int64    `json:"fired"`
	Missed         int64    `json:"missed"`
	TriggersPerSec *float64 `json:"triggers_per_sec"`
	// TriggerLag is scheduled time → handler start, measured in the
	// handler, of the runs that started (compare Started with Fired);
	// FireLag is scheduled time → the trigger's fired_at in the
	// store (jobd settled it).
	TriggerLag *Latency `json:"trigger_lag"`
	FireLag    *Latency `json:"fire_lag"`
	// JobdCPUSeconds is jobd's user+system CPU time in the window (for
	// list: while the commands ran), JobdCPUPercent the same over the
	// window's length.
	JobdCPUSeconds float64 `json:"jobd_cpu_s"`
	JobdCPUPercent float64 `json:"jobd_cpu_pct"`
	// HarnessCPUPercent is the same for the harness process, which runs
	// the embedded SDK executors (and, for list, waits for jobctl).
	HarnessCPUPercent float64 `json:"harness_cpu_pct"`
	// JobdPeakRSSMB is jobd's VmHWM at the end of the workload.
	JobdPeakRSSMB float64 `json:"jobd_peak_rss_mb"`
	// StoreSizeMB is the database and its WAL after jobd stopped;
	// RunsStored the runs in it.
	StoreSizeMB float64 `json:"store_size_mb"`
	RunsStored  int64   `json:"runs_stored"`

	Scale   *ScaleFigures   `json:"scale,omitempty"`
	List    []ListFigures   `json:"list,omitempty"`
	Failure []FailureFigure `json:"failure,omitempty"`
	Drain   *DrainFigures   `json:"drain,omitempty"`
}

// Latency summarises durations, in milliseconds.
type Latency struct {
	N     int     `json:"n"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

// ScaleFigures are the scale workload's own figures. jobd is started on
// the seeded store (cold), then restarted with its executors running.
type ScaleFigures struct {
	// SeedS is the time to write the jobs into the SQLite file.
	SeedS float64 `json:"seed_s"`
	// ColdReadyS and ColdFirstFireS are exec → /readyz OK and exec → the
	// first handler start of the first jobd, whose executors start once
	// it is ready.
	ColdReadyS     float64 `json:"cold_ready_s"`
	ColdFirstFireS float64 `json:"cold_first_fire_s"`
	ColdPeakRSSMB  float64 `json:"cold_peak_rss_mb"`
	// RestartReadyS and RestartFirstFireS are the same for the restarted
	// jobd, whose executors reconnect by themselves.
	RestartReadyS     float64 `json:"restart_ready_s"`
	RestartFirstFireS float64 `json:"restart_first_fire_s"`
	// RSSSettledMB is the restarted jobd's VmRSS RSSSettledAtS seconds
	// after its exec.
	RSSSettledMB  float64 `json:"rss_settled_mb"`
	RSSSettledAtS float64 `json:"rss_settled_at_s"`
}

// ListFigures is the latency of one jobctl command, exec to exit.
type ListFigures struct {
	Command string `json:"command"`
	// Lines is how many lines it printed (the last time), header included.
	Lines   int     `json:"lines"`
	Latency Latency `json:"latency"`
}

// FailureFigure is one kill of an executor holding a run.
type FailureFigure struct {
	Executor string `json:"executor"`
	// LostMs is kill → the held run reads lost through the API (polled
	// every 10ms); LostJobdMs is kill → the run's finished_at, when jobd
	// marked it lost.
	LostMs     float64 `json:"lost_ms"`
	LostJobdMs float64 `json:"lost_jobd_ms"`
	// RetryStartMs is kill → the retry's handler start on the other
	// executor.
	RetryStartMs float64 `json:"retry_start_ms"`
	// RoutedBeforeKill counts runs assigned to the executor before the
	// kill (the held run among them).
	RoutedBeforeKill int `json:"routed_before_kill"`
	// RoutedAfterKill counts runs assigned to the dead executor after the
	// kill, and LastRoutedMs is kill → the last of them (nil: none).
	RoutedAfterKill int      `json:"routed_after_kill"`
	LastRoutedMs    *float64 `json:"last_routed_ms"`
	// RoutedAfterLost counts runs assigned to it after jobd marked the held
	// run lost: 0 when detection stops routing.
	RoutedAfterLost int `json:"routed_after_lost"`
}

// DrainFigures are the drain workload's own figures.
type DrainFigures struct {
	Executor string `json:"executor"`
	// RoutedBefore counts runs the drained executor was given before the
	// drain request, so a 0 below means something.
	RoutedBefore int `json:"routed_before"`
	// AckMs is drain request → acknowledgement (the API answer).
	AckMs float64 `json:"ack_ms"`
	// RoutedDuringRequest counts runs assigned to it between the request
	// and its acknowledgement.
	RoutedDuringRequest int `json:"routed_during_request"`
	// RoutedAfterAck counts runs assigned to it after the acknowledgement:
	// must be 0.
	RoutedAfterAck int `json:"routed_after_ack"`
	// DrainedMs is ack → the executor deregistered and stopped (nil: not
	// within the window).
	DrainedMs *float64 `json:"drained_ms"`
}

// latencyOf sorts ds and summarises them (nearest-rank percentiles); nil
// if there are none.
func latencyOf(ds []time.Duration) *Latency {
	if len(ds) == 0 {
		return nil
	}
	slices.Sort(ds)
	at := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(ds)))) - 1
		return ds[min(max(i, 0), len(ds)-1)]
	}
	return &Latency{N: len(ds), P50Ms: msOf(at(0.50)), P99Ms: msOf(at(0.99)), MaxMs: msOf(ds[len(ds)-1])}
}

func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func ptr[T any](v T) *T { return &v }

// dash is what the tables print for a figure that does not apply.
const dash = "—"

func fmtLatency(l *Latency) string {
	if l == nil {
		return dash
	}
	return fmt.Sprintf("%s / %s / %s", fmtMs(l.P50Ms), fmtMs(l.P99Ms), fmtMs(l.MaxMs))
}

// fmtMs prints milliseconds with two decimals under 100, none above.
func fmtMs(ms float64) string {
	if ms < 100 {
		return strconv.FormatFloat(ms, 'f', 2, 64)
	}
	return strconv.FormatFloat(ms, 'f', 0, 64)
}

func fmtF(v *float64, prec int) string {
	if v == nil {
		return dash
	}
	return strconv.FormatFloat(*v, 'f', prec, 64)
}

// joinEach formats one figure of every element, " / " between them.
func joinEach[T any](xs []T, f func(T) string) string {
	if len(xs) == 0 {
		return dash
	}
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = f(x)
	}
	return strings.Join(parts, " / ")
}

// printResults prints the common figures of every result, then the
// workload-specific ones, then the details of list and failure.
func printResults(out io.Writer, rs []Result) {
	if len(rs) == 0 {
		return
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tRATE\tJOBS\tWINDOW s\tTRIG/S\tSTARTED/FIRED\tMISSED\tLAG p50/p99/max ms\tFIRE LAG p50/p99/max ms\tJOBD CPU s (%)\tHARNESS CPU %\tPEAK RSS MB\tSTORE MB\tRUNS STORED")
	for _, r := range rs {
		rate := dash
		if r.Rate > 0 {
			rate = strconv.Itoa(r.Rate)
		}
		started, missed := dash, dash
		if r.TriggersPerSec != nil {
			started, missed = fmt.Sprintf("%d / %d", r.Started, r.Fired), strconv.FormatInt(r.Missed, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t%.1f (%.0f%%)\t%.0f%%\t%.1f\t%.1f\t%d\n",
			r.Workload, rate, r.Jobs, r.WindowS, fmtF(r.TriggersPerSec, 0), started, missed,
			fmtLatency(r.TriggerLag), fmtLatency(r.FireLag), r.JobdCPUSeconds, r.JobdCPUPercent,
			r.HarnessCPUPercent, r.JobdPeakRSSMB, r.StoreSizeMB, r.RunsStored)
	}
	tw.Flush()
	for _, r := range rs {
		if r.TriggersPerSec != nil && float64(r.Started) < 0.99*float64(r.Fired) {
			fmt.Fprintf(out, "note: %s: only %d of the %d triggers fired in the window started a handler; its lag covers those only\n",
				r.Workload, r.Started, r.Fired)
		}
	}

	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tSETUP s\tREADY s\tFIRST FIRE s\tRSS SETTLED MB\tLIST p99 ms (worst)\tLOST ms\tRETRY START ms\tLAST ROUTED ms\tROUTED AFTER LOST\tROUTED AFTER DRAIN ACK")
	for _, r := range rs {
		ready, first, rss := dash, dash, dash
		if s := r.Scale; s != nil {
			ready = fmt.Sprintf("%.2f (cold %.2f)", s.RestartReadyS, s.ColdReadyS)
			first = fmt.Sprintf("%.2f (cold %.2f)", s.RestartFirstFireS, s.ColdFirstFireS)
			rss = fmt.Sprintf("%.1f at %.0fs", s.RSSSettledMB, s.RSSSettledAtS)
		}
		list := dash
		if len(r.List) > 0 {
			worst := slices.MaxFunc(r.List, func(a, b ListFigures) int { return cmp.Compare(a.Latency.P99Ms, b.Latency.P99Ms) })
			list = fmt.Sprintf("%s (%s)", fmtMs(worst.Latency.P99Ms), worst.Command)
		}
		f := r.Failure
		lost := joinEach(f, func(x FailureFigure) string { return fmtMs(x.LostMs) })
		retry := joinEach(f, func(x FailureFigure) string { return fmtMs(x.RetryStartMs) })
		last := joinEach(f, func(x FailureFigure) string { return fmtF(x.LastRoutedMs, 0) })
		afterLost := joinEach(f, func(x FailureFigure) string { return strconv.Itoa(x.RoutedAfterLost) })
		afterAck := dash
		if r.Drain != nil {
			afterAck = strconv.Itoa(r.Drain.RoutedAfterAck)
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.Workload, r.SetupS, ready, first, rss, list, lost, retry, last, afterLost, afterAck)
	}
	tw.Flush()

	for _, r := range rs {
		if len(r.List) > 0 {
			fmt.Fprintf(out, "\nlist: jobctl latency, exec to exit, with %d runs stored (%d repetitions each)\n", r.RunsStored, r.List[0].Latency.N)
			tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "COMMAND\tLINES\tp50 ms\tp99 ms\tmax ms")
			for _, l := range r.List {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", l.Command, l.Lines, fmtMs(l.Latency.P50Ms), fmtMs(l.Latency.P99Ms), fmtMs(l.Latency.MaxMs))
			}
			tw.Flush()
		}
		if len(r.Failure) > 0 {
			fmt.Fprintln(out, "\nfailure: SIGKILL of an executor holding a run (times from the kill)")
			tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "EXECUTOR\tLOST ms (API)\tLOST ms (jobd)\tRETRY START ms\tROUTED BEFORE KILL\tROUTED AFTER KILL\tLAST ROUTED ms\tROUTED AFTER LOST")
			for _, x := range r.Failure {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%d\n", x.Executor, fmtMs(x.LostMs), fmtMs(x.LostJobdMs),
					fmtMs(x.RetryStartMs), x.RoutedBeforeKill, x.RoutedAfterKill, fmtF(x.LastRoutedMs, 0), x.RoutedAfterLost)
			}
			tw.Flush()
		}
		if d := r.Drain; d != nil {
			fmt.Fprintf(out, "\ndrain: executor %s had %d runs before the request; ack %s ms; %d runs routed during the request, %d after the ack; stopped %s ms after the ack\n",
				d.Executor, d.RoutedBefore, fmtMs(d.AckMs), d.RoutedDuringRequest, d.RoutedAfterAck, fmtF(d.DrainedMs, 1))
		}
	}
}
