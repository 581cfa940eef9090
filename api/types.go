// Package api holds the wire types of jobd's HTTP API under /api/v1 and the
// typed Client shared by jobctl, the TUI and the executor.
//
// JSON objects use snake_case keys, times are RFC 3339 with milliseconds in
// UTC (see Time), durations are Go duration strings (see Duration) and ids
// are strings.
package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Prefix is the path prefix of every API route.
const Prefix = "/api/v1"

// TimeFormat is the layout of every time on the wire: RFC 3339 with
// milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// Time is a time.Time that marshals as RFC 3339 with milliseconds in UTC.
// The zero Time marshals as null.
type Time struct{ time.Time }

// NewTime returns t as a Time; a zero t stays zero.
func NewTime(t time.Time) Time { return Time{t} }

// MarshalJSON implements json.Marshaler.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + t.UTC().Format(TimeFormat) + `"`), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (t *Time) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("time: %w", err)
	}
	if s == "" {
		t.Time = time.Time{}
		return nil
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("time %q: want RFC 3339: %w", s, err)
	}
	t.Time = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (t Time) MarshalYAML() (any, error) {
	if t.IsZero() {
		return nil, nil
	}
	return t.UTC().Format(TimeFormat), nil
}

// String formats t like it is sent on the wire, or "-" when zero.
func (t Time) String() string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(TimeFormat)
}

// Duration is a time.Duration that marshals as a Go duration string ("1m30s").
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON implements json.Unmarshaler; it accepts a duration string or
// a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var secs float64
		if err2 := json.Unmarshal(b, &secs); err2 != nil {
			return fmt.Errorf("duration: want a string like \"30s\": %w", err)
		}
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	return d.parse(s)
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// UnmarshalText implements encoding.TextUnmarshaler (used by YAML).
func (d *Duration) UnmarshalText(b []byte) error { return d.parse(string(b)) }

func (d *Duration) parse(s string) error {
	s = strings.TrimSpace(s)
	if s == "" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Schedule kinds.
const (
	ScheduleCron   = "cron"
	ScheduleEvery  = "every"
	ScheduleDelay  = "delay"
	ScheduleAt     = "at"
	ScheduleManual = "manual"
)

// Job kinds.
const (
	KindCommand = "command"
	KindScript  = "script"
	KindHTTP    = "http"
	KindHandler = "handler"
)

// Misfire policies.
const (
	MisfireSkip     = "skip"
	MisfireFireOnce = "fire_once"
	MisfireCatchUp  = "catch_up"
)

// Overlap policies.
const (
	OverlapAllow   = "allow"
	OverlapQueue   = "queue"
	OverlapSkip    = "skip"
	OverlapReplace = "replace"
)

// Routing strategies: how a run picks one executor of its group (SPEC §4).
const (
	RouteFirst               = "first"
	RouteLast                = "last"
	RouteRoundRobin          = "round_robin"
	RouteRandom              = "random"
	RouteConsistentHash      = "consistent_hash"
	RouteLeastFrequentlyUsed = "least_frequently_used"
	RouteLeastRecentlyUsed   = "least_recently_used"
	RouteFailover            = "failover"
	RouteBusyover            = "busyover"
	RouteShardingBroadcast   = "sharding_broadcast"
)

// Routes lists every routing strategy.
var Routes = []string{
	RouteFirst, RouteLast, RouteRoundRobin, RouteRandom, RouteConsistentHash,
	RouteLeastFrequentlyUsed, RouteLeastRecentlyUsed, RouteFailover, RouteBusyover,
	RouteShardingBroadcast,
}

// Retry backoff policies (JobSpec.BackoffPolicy).
const (
	BackoffFixed       = "fixed"
	BackoffExponential = "exponential"
)

// Run states.
const (
	RunPending   = "pending"
	RunAssigned  = "assigned"
	RunRunning   = "running"
	RunSucceeded = "succeeded"
	RunFailed    = "failed"
	RunTimedOut  = "timed_out"
	RunKilled    = "killed"
	RunLost      = "lost"
	RunSkipped   = "skipped"
)

// RunEnded reports whether state is final: a run in it changes no more.
func RunEnded(state string) bool {
	switch state {
	case RunSucceeded, RunFailed, RunTimedOut, RunKilled, RunLost, RunSkipped:
		return true
	}
	return false
}

// RunStates lists every run state.
var RunStates = []string{
	RunPending, RunAssigned, RunRunning, RunSucceeded, RunFailed,
	RunTimedOut, RunKilled, RunLost, RunSkipped,
}

// Executor states.
const (
	ExecutorOnline      = "online"
	ExecutorSuspect     = "suspect"
	ExecutorDraining    = "draining"
	ExecutorDrained     = "drained"
	ExecutorOffline     = "offline"
	ExecutorQuarantined = "quarantined"
)

// HTTPRequest is the payload of an http job.
type HTTPRequest struct {
	Method  string            `json:"method,omitempty" yaml:"method,omitempty"`
	URL     string            `json:"url" yaml:"url"`
	Headers map[string]string `json:"headers,omitempty" yaml:"headers,omitempty"`
	Body    string            `json:"body,omitempty" yaml:"body,omitempty"`
}

// JobSpec is what a user declares about a job: the body of create, edit and
// apply. Exactly one of Cron, Every, Delay, At and Manual sets the schedule,
// and exactly one of Command, Script, HTTP and Handler sets the kind.
type JobSpec struct {
	Name  string `json:"name" yaml:"name"`
	Group string `json:"group" yaml:"group"`

	Cron   string    `json:"cron,omitempty" yaml:"cron,omitempty"`
	Every  *Duration `json:"every,omitempty" yaml:"every,omitempty"`
	Anchor *Time     `json:"anchor,omitempty" yaml:"anchor,omitempty"`
	Delay  *Duration `json:"delay,omitempty" yaml:"delay,omitempty"`
	At     *Time     `json:"at,omitempty" yaml:"at,omitempty"`
	Manual bool      `json:"manual,omitempty" yaml:"manual,omitempty"`
	TZ     string    `json:"tz,omitempty" yaml:"tz,omitempty"`

	Command     []string     `json:"command,omitempty" yaml:"command,omitempty"`
	Script      string       `json:"script,omitempty" yaml:"script,omitempty"`
	Interpreter string       `json:"interpreter,omitempty" yaml:"interpreter,omitempty"`
	HTTP        *HTTPRequest `json:"http,omitempty" yaml:"http,omitempty"`
	Handler     string       `json:"handler,omitempty" yaml:"handler,omitempty"`

	Params map[string]string `json:"params,omitempty" yaml:"params,omitempty"`
	Labels map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`

	Misfire          string            `json:"misfire,omitempty" yaml:"misfire,omitempty"`
	MisfireThreshold *Duration         `json:"misfire_threshold,omitempty" yaml:"misfire_threshold,omitempty"`
	MaxCatchUp       int               `json:"max_catch_up,omitempty" yaml:"max_catch_up,omitempty"`
	RecordMissed     bool              `json:"record_missed,omitempty" yaml:"record_missed,omitempty"`
	Overlap          string            `json:"overlap,omitempty" yaml:"overlap,omitempty"`
	QueueMax         int               `json:"queue_max,omitempty" yaml:"queue_max,omitempty"`
	Route            string            `json:"route,omitempty" yaml:"route,omitempty"`
	Selector         map[string]string `json:"selector,omitempty" yaml:"selector,omitempty"`
	Retries          int               `json:"retries,omitempty" yaml:"retries,omitempty"`
	Backoff          *Duration         `json:"backoff,omitempty" yaml:"backoff,omitempty"`
	BackoffPolicy    string            `json:"backoff_policy,omitempty" yaml:"backoff_policy,omitempty"`
	BackoffMax       *Duration         `json:"backoff_max,omitempty" yaml:"backoff_max,omitempty"`
	Timeout          *Duration         `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	Paused           bool              `json:"paused" yaml:"paused"`
}

// Job is a stored job as the API returns it.
type Job struct {
	JobSpec `yaml:",inline"`

	ID         string `json:"id" yaml:"id"`
	Schedule   string `json:"schedule" yaml:"schedule"`
	Kind       string `json:"kind" yaml:"kind"`
	NextFireAt Time   `json:"next_fire_at" yaml:"next_fire_at"`
	LastFireAt Time   `json:"last_fire_at" yaml:"last_fire_at"`
	LastState  string `json:"last_state,omitempty" yaml:"last_state,omitempty"`
	CreatedAt  Time   `json:"created_at" yaml:"created_at"`
	UpdatedAt  Time   `json:"updated_at" yaml:"updated_at"`

	// ScriptVersion is the version of the source a script job runs (see
	// ScriptVersion); 0 for other kinds.
	ScriptVersion int `json:"script_version,omitempty" yaml:"script_version,omitempty"`
}

// ScriptVersion is one stored version of the source of a script job, as
// listed by GET /api/v1/jobs/{name}/scripts (newest first).
type ScriptVersion struct {
	Version   int    `json:"version" yaml:"version"`
	CreatedAt Time   `json:"created_at" yaml:"created_at"`
	SHA256    string `json:"sha256" yaml:"sha256"`
	Size      int    `json:"size" yaml:"size"`
}

// Run is one attempt to execute a trigger on one executor.
type Run struct {
	ID          string `json:"id" yaml:"id"`
	Job         string `json:"job" yaml:"job"`
	TriggerID   string `json:"trigger_id" yaml:"trigger_id"`
	State       string `json:"state" yaml:"state"`
	Origin      string `json:"origin" yaml:"origin"`
	ScheduledAt Time   `json:"scheduled_at" yaml:"scheduled_at"`
	CreatedAt   Time   `json:"created_at" yaml:"created_at"`
	AssignedAt  Time   `json:"assigned_at" yaml:"assigned_at"`
	StartedAt   Time   `json:"started_at" yaml:"started_at"`
	FinishedAt  Time   `json:"finished_at" yaml:"finished_at"`
	Executor    string `json:"executor" yaml:"executor"`
	ExecutorID  string `json:"executor_id" yaml:"executor_id"`
	Attempt     int    `json:"attempt" yaml:"attempt"`
	ExitCode    *int   `json:"exit_code" yaml:"exit_code"`
	Error       string `json:"error,omitempty" yaml:"error,omitempty"`
	Output      string `json:"output,omitempty" yaml:"output,omitempty"`
	Replay      bool   `json:"replay" yaml:"replay"`
	ShardIndex  int    `json:"shard_index" yaml:"shard_index"`
	ShardTotal  int    `json:"shard_total" yaml:"shard_total"`
	// Params are this run's own parameters (a manual trigger's), on top of
	// the job's.
	Params map[string]string `json:"params,omitempty" yaml:"params,omitempty"`
}

// Executor is a registered executor as the API returns it.
type Executor struct {
	ID           string            `json:"id" yaml:"id"`
	Name         string            `json:"name" yaml:"name"`
	Group        string            `json:"group" yaml:"group"`
	Host         string            `json:"host" yaml:"host"`
	Labels       map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	Version      string            `json:"version" yaml:"version"`
	State        string            `json:"state" yaml:"state"`
	StateSince   Time              `json:"state_since" yaml:"state_since"`
	Running      int               `json:"running" yaml:"running"`
	Slots        int               `json:"slots" yaml:"slots"`
	LastSeen     Time              `json:"last_seen" yaml:"last_seen"`
	RegisteredAt Time              `json:"registered_at" yaml:"registered_at"`
	// Drain is set while the executor drains.
	Drain *DrainProgress `json:"drain,omitempty" yaml:"drain,omitempty"`
}

// RunsLeft is how many runs the executor still has: its drain's count
// while it drains, else the runs it is running.
func (x Executor) RunsLeft() int {
	if x.Drain != nil {
		return x.Drain.RunsLeft
	}
	return x.Running
}

// StateText is the executor's state as people read it: "draining (3
// left)" while it drains.
func (x Executor) StateText() string {
	if x.State == ExecutorDraining && x.Drain != nil {
		return fmt.Sprintf("%s (%d left)", x.State, x.Drain.RunsLeft)
	}
	return x.State
}

// DrainRequest is the body of POST /api/v1/executors/{id}/drain (admin) and
// POST /api/v1/executor/{id}/drain (an executor draining itself on SIGTERM).
type DrainRequest struct {
	// Timeout bounds the drain; 0 means no bound.
	Timeout Duration `json:"timeout,omitempty"`
	// OnTimeout says what happens to runs still going at the timeout:
	// "requeue" (killed and queued again for another executor) or "finish"
	// (left to finish). Default requeue.
	OnTimeout string `json:"on_timeout,omitempty"`
}

// Drain outcomes for runs still going at the drain timeout.
const (
	DrainRequeue = "requeue"
	DrainFinish  = "finish"
)

// DrainProgress is how far a drain got.
type DrainProgress struct {
	RunsLeft  int    `json:"runs_left" yaml:"runs_left"`
	Deadline  Time   `json:"deadline" yaml:"deadline"`
	OnTimeout string `json:"on_timeout" yaml:"on_timeout"`
	StartedAt Time   `json:"started_at" yaml:"started_at"`
}

// Missed is a compact record of scheduled times of one job that did not
// fire: Count times from From to To inclusive.
type Missed struct {
	ID         string `json:"id" yaml:"id"`
	Job        string `json:"job" yaml:"job"`
	From       Time   `json:"from" yaml:"from"`
	To         Time   `json:"to" yaml:"to"`
	Count      int64  `json:"count" yaml:"count"`
	Reason     string `json:"reason" yaml:"reason"`
	RecordedAt Time   `json:"recorded_at" yaml:"recorded_at"`
}

// Missed reasons.
const (
	MissedDown       = "down"        // more than the misfire threshold late (jobd was down or stalled)
	MissedPaused     = "paused"      // the job was paused with record_missed
	MissedNoExecutor = "no_executor" // no online executor in the group
	MissedCoalesced  = "coalesced"   // fire_once fired a later time instead
	MissedCapped     = "capped"      // catch_up hit max_catch_up
)

// Trigger origins.
const (
	OriginSchedule = "schedule"
	OriginManual   = "manual"
	OriginReplay   = "replay"
	OriginRetry    = "retry"
)

// Status is the answer of GET /api/v1/status.
type Status struct {
	Version         string           `json:"version" yaml:"version"`
	StartedAt       Time             `json:"started_at" yaml:"started_at"`
	Leader          bool             `json:"leader" yaml:"leader"`
	Store           string           `json:"store" yaml:"store"`
	Socket          string           `json:"socket" yaml:"socket"`
	Listen          string           `json:"listen" yaml:"listen"`
	Jobs            int64            `json:"jobs" yaml:"jobs"`
	JobsPaused      int64            `json:"jobs_paused" yaml:"jobs_paused"`
	Executors       map[string]int   `json:"executors" yaml:"executors"`
	Runs            map[string]int64 `json:"runs" yaml:"runs"`
	Missed          int64            `json:"missed" yaml:"missed"`
	PendingTriggers int              `json:"pending_triggers" yaml:"pending_triggers"`
	NextTriggers    []NextTrigger    `json:"next_triggers" yaml:"next_triggers"`
	// RunsPerMinute counts the runs that ended in each of the last
	// minutes this jobd has been up, oldest first; the last entry is the
	// minute in progress.
	RunsPerMinute []RunMinute `json:"runs_per_minute" yaml:"runs_per_minute"`
}

// RunMinute counts the runs that ended in one minute, by outcome.
type RunMinute struct {
	Minute    Time  `json:"minute" yaml:"minute"`
	Succeeded int64 `json:"succeeded" yaml:"succeeded"`
	// Failed counts failed, timed_out and lost runs.
	Failed int64 `json:"failed" yaml:"failed"`
	// Other counts killed and skipped runs.
	Other int64 `json:"other" yaml:"other"`
}

// NextTrigger is a trigger due soon, as shown by status.
type NextTrigger struct {
	Job         string `json:"job" yaml:"job"`
	ScheduledAt Time   `json:"scheduled_at" yaml:"scheduled_at"`
}

// TriggerRequest is the body of POST /api/v1/jobs/{name}/trigger.
type TriggerRequest struct {
	Params map[string]string `json:"params,omitempty"`
}

// TriggerResponse answers a manual trigger.
type TriggerResponse struct {
	TriggerID   string `json:"trigger_id" yaml:"trigger_id"`
	Job         string `json:"job" yaml:"job"`
	ScheduledAt Time   `json:"scheduled_at" yaml:"scheduled_at"`
	Runs        []Run  `json:"runs" yaml:"runs"`
}

// ApplyRequest is the body of POST /api/v1/apply.
type ApplyRequest struct {
	Jobs   []JobSpec `json:"jobs" yaml:"jobs"`
	Prune  bool      `json:"prune,omitempty" yaml:"prune,omitempty"`
	DryRun bool      `json:"dry_run,omitempty" yaml:"dry_run,omitempty"`
}

// ApplyResponse lists what an apply changed (or would change on a dry run).
type ApplyResponse struct {
	Created   []string `json:"created" yaml:"created"`
	Updated   []string `json:"updated" yaml:"updated"`
	Unchanged []string `json:"unchanged" yaml:"unchanged"`
	Deleted   []string `json:"deleted" yaml:"deleted"`
	DryRun    bool     `json:"dry_run" yaml:"dry_run"`
}

// ReplayRequest is the body of POST /api/v1/replay.
type ReplayRequest struct {
	Job    string `json:"job,omitempty"`
	Since  Time   `json:"since"`
	Until  Time   `json:"until"`
	Latest bool   `json:"latest,omitempty"`
	DryRun bool   `json:"dry_run,omitempty"`
	// Limit caps how many triggers one request replays; 0 means the server
	// default. Count in the response says how many matched in all.
	Limit int `json:"limit,omitempty"`
}

// ReplayResponse lists the triggers a replay fired (or would fire).
type ReplayResponse struct {
	Count    int64         `json:"count" yaml:"count"`
	Fired    int64         `json:"fired" yaml:"fired"`
	DryRun   bool          `json:"dry_run" yaml:"dry_run"`
	Triggers []NextTrigger `json:"triggers" yaml:"triggers"`
}

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error string `json:"error"`
	// Field names the input field at fault, when there is one.
	Field string `json:"field,omitempty"`
}
