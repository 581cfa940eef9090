// Package store defines jobd's persistent state and the Store interface that
// every driver (SQLite in store/sqlite, PostgreSQL later) implements. The
// daemon depends only on this package's types, so a driver can be added
// without touching it. Every driver must pass the conformance suite in
// store/storetest.
//
// Times are kept with millisecond precision; drivers store them as integer
// unix milliseconds. A zero time.Time means "none" (NULL).
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors returned (wrapped) by every driver.
var (
	// ErrNotFound means the row asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a unique key is taken (a job name, an executor name).
	ErrConflict = errors.New("conflict")
)

// Trigger states.
const (
	TriggerPending = "pending" // stored, waiting for its time
	TriggerFired   = "fired"   // runs were created for it
	TriggerMissed  = "missed"  // it did not fire; a Missed row counts it
)

// Trigger origins. (job, scheduled_at) is unique among schedule triggers
// and, separately, among replay triggers; manual triggers are not unique.
const (
	OriginSchedule = "schedule" // materialised from the job's schedule
	OriginReplay   = "replay"   // a missed time fired again by replay
	OriginManual   = "manual"   // fired on demand (jobctl job trigger, API)
)

// Run states. Pending, assigned and running are active; the rest are final.
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

// Job is a stored job. Spec is an opaque document owned by the daemon (the
// job's declaration); the store only indexes the columns it queries.
type Job struct {
	ID     int64
	Name   string
	Group  string
	Spec   []byte
	Paused bool
	// NextFireAt is the next scheduled time not yet stored as a trigger:
	// the materialisation cursor. Zero means nothing is scheduled.
	NextFireAt time.Time
	LastFireAt time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Trigger is one fire of a job at one scheduled time. For Origin "schedule"
// (job, scheduled_at) is unique, and so it is for "replay".
type Trigger struct {
	ID          int64
	JobID       int64
	ScheduledAt time.Time
	Origin      string
	State       string
	CreatedAt   time.Time
	FiredAt     time.Time
}

// Run is one attempt to execute a trigger on one executor.
type Run struct {
	ID           int64
	TriggerID    int64
	JobID        int64
	JobName      string
	Attempt      int
	State        string
	Origin       string
	ExecutorID   string
	ExecutorName string
	ScheduledAt  time.Time
	CreatedAt    time.Time
	AssignedAt   time.Time
	StartedAt    time.Time
	FinishedAt   time.Time
	// ExitCode is nil until the run reports one.
	ExitCode   *int
	Error      string
	Output     string
	Replay     bool
	ShardIndex int
	ShardTotal int
	// Params are parameters of this run only (a manual trigger's), added
	// to the job's own.
	Params map[string]string
	// NotBefore delays a pending run (a retry's backoff); zero: at once.
	NotBefore time.Time
}

// Missed is a compact record of Count scheduled times of one job, from From
// to To inclusive, that did not fire for Reason. Schedule is the job's
// schedule when they were recorded, so the times can be listed again.
type Missed struct {
	ID         int64
	JobID      int64
	JobName    string
	From       time.Time
	To         time.Time
	Count      int64
	Reason     string
	Schedule   string
	RecordedAt time.Time
}

// Executor is a registered executor. (Group, Name) is unique; ID is stable
// across re-registrations of the same name.
type Executor struct {
	ID           string
	Group        string
	Name         string
	Host         string
	Labels       map[string]string
	Version      string
	Slots        int
	State        string
	StateSince   time.Time
	LastSeen     time.Time
	RegisteredAt time.Time
}

// JobListParams selects jobs, ordered by name.
type JobListParams struct {
	Group string
	// After returns only jobs whose name sorts after it (paging).
	After string
	// Limit caps the result; 0 means no limit.
	Limit int
}

// JobUpdateParams replaces a job's group, spec, paused flag and cursor.
type JobUpdateParams struct {
	Job *Job
	// ClearPending deletes the job's pending schedule triggers in the same
	// transaction (used when the schedule changes or the job is paused).
	ClearPending bool
}

// JobAdvance moves a job's materialisation cursor from Expect to Next. It
// applies only if the cursor still equals Expect; otherwise the triggers and
// missed rows given for the job in the same call are dropped.
type JobAdvance struct {
	JobID  int64
	Expect time.Time
	Next   time.Time
}

// MaterializeParams stores a batch of pending triggers and missed rows and
// advances the jobs' cursors, all in one transaction.
type MaterializeParams struct {
	Advances []JobAdvance
	// Triggers to insert as pending; a (job, scheduled_at) already stored is
	// silently kept as it is.
	Triggers []*Trigger
	Missed   []*MissedAppend
}

// MissedAppend records missed times. If the newest Missed row of the job
// with the same Reason ends at MergeAfter (the scheduled time just before
// From), that row is extended instead of adding a new one.
type MissedAppend struct {
	Missed     *Missed
	MergeAfter time.Time
}

// FireParams settles one trigger. If TriggerID is 0, Trigger is inserted
// (a manual fire) already settled; otherwise the stored pending trigger is
// settled, and if it is not pending any more nothing of this item applies.
type FireParams struct {
	TriggerID int64
	Trigger   *Trigger
	// State is TriggerFired or TriggerMissed.
	State  string
	FireAt time.Time
	// Runs are inserted for a fired trigger; their TriggerID is filled in.
	Runs []*Run
	// Missed is recorded for a missed trigger.
	Missed *MissedAppend
}

// FireResult tells what one FireParams did.
type FireResult struct {
	// Applied is false when the trigger had already been settled.
	Applied   bool
	TriggerID int64
	Runs      []*Run
}

// RunListParams selects runs, newest first.
type RunListParams struct {
	JobName string
	State   string
	// ExecutorID keeps the runs handed to one executor.
	ExecutorID string
	// Before returns only runs with a smaller id (paging).
	Before int64
	// Limit caps the result; 0 means no limit.
	Limit int
}

// RunTransition moves a run to To if its state is one of From. Fields set
// on Set are written with it (zero values leave the column unchanged).
type RunTransition struct {
	RunID int64
	From  []string
	To    string
	Set   RunFields
}

// RunFields are the optional columns a transition or report writes.
type RunFields struct {
	ExecutorID   string
	ExecutorName string
	AssignedAt   time.Time
	StartedAt    time.Time
	FinishedAt   time.Time
	ExitCode     *int
	Error        string
}

// ReportParams applies one executor report to a run, idempotently by
// (RunID, Attempt, Seq). An executor numbers the reports of a run attempt
// from 1 and sends them in that order, so the store keeps only the highest
// Seq applied per (RunID, Attempt): a report at or below it is a
// Duplicate, whether it was applied or skipped over.
type ReportParams struct {
	RunID   int64
	Attempt int
	Seq     int64
	// Transition, if set, is applied with the report (start or result).
	Transition *RunTransition
	// Log is appended to the run's stored output, kept to OutputCap bytes.
	Log string
}

// ReportResult tells what a report did.
type ReportResult struct {
	Duplicate bool
	// Applied is false when the transition did not match the run's state.
	Applied bool
	// Run is the run after a transition that applied (without Output).
	Run *Run
	// Err is set, in RunReports, for a report refused on its own (an
	// unknown run is ErrNotFound); the rest of the batch still applies.
	Err error
}

// OutputCap is the most run output the store keeps per run; past it the
// output ends with OutputTruncated.
const OutputCap = 1 << 20

// OutputTruncated marks output cut at OutputCap.
const OutputTruncated = "\n[jobd: output truncated]\n"

// MissedListParams selects missed rows, oldest first.
type MissedListParams struct {
	JobName string
	// Since and Until keep rows whose range overlaps [Since, Until]; zero
	// means unbounded.
	Since time.Time
	Until time.Time
}

// ReplayParams consumes missed rows and stores the replay triggers that
// replace them, in one transaction.
type ReplayParams struct {
	// Delete removes these missed rows, as they were read: if a row's To or
	// Count changed since (it was extended), nothing is written and the
	// error is ErrConflict, so the caller can read again and retry...
	Delete []*Missed
	// ...and Insert adds what remains of them outside the replayed range.
	Insert []*Missed
	// Triggers are inserted as pending with origin replay.
	Triggers []*Trigger
}

// ScriptVersionsKept is how many versions of a job's script are kept.
const ScriptVersionsKept = 30

// Script is one version of a script job's source.
type Script struct {
	JobID     int64
	Version   int
	Source    string
	SHA256    string
	Size      int
	CreatedAt time.Time
}

// Store is jobd's persistent state. Every method is safe for concurrent use.
type Store interface {
	// Driver names the driver ("sqlite", "postgres").
	Driver() string
	// Close releases the store.
	Close() error

	JobCreate(ctx context.Context, job *Job) (*Job, error)
	JobGet(ctx context.Context, name string) (*Job, error)
	JobGetByID(ctx context.Context, id int64) (*Job, error)
	JobList(ctx context.Context, p JobListParams) ([]*Job, error)
	JobCount(ctx context.Context) (total, paused int64, err error)
	JobUpdate(ctx context.Context, p JobUpdateParams) (*Job, error)
	// JobDelete removes a job, its triggers (pending and settled) and
	// missed rows; its runs stay in history. A missing job is ErrNotFound.
	JobDelete(ctx context.Context, id int64) error
	// JobsDue lists unpaused jobs whose cursor is at or before before,
	// earliest first, at most limit of them (0: all).
	JobsDue(ctx context.Context, before time.Time, limit int) ([]*Job, error)

	// TriggersMaterialize stores pending triggers, missed rows and cursor
	// moves in one transaction and returns the triggers it inserted.
	TriggersMaterialize(ctx context.Context, p MaterializeParams) ([]*Trigger, error)
	// TriggersPending lists pending triggers, earliest first.
	TriggersPending(ctx context.Context) ([]*Trigger, error)
	// TriggersFire settles a batch of triggers in one transaction.
	TriggersFire(ctx context.Context, batch []*FireParams) ([]FireResult, error)
	// TriggerList lists settled and pending triggers of a job in [from, to].
	TriggerList(ctx context.Context, jobID int64, from, to time.Time) ([]*Trigger, error)

	// RunGet returns a run with its Output.
	RunGet(ctx context.Context, id int64) (*Run, error)
	// RunList lists runs newest first. It leaves Output empty (RunGet
	// loads it), so listing stays cheap however much the runs logged.
	RunList(ctx context.Context, p RunListParams) ([]*Run, error)
	// RunsActive lists runs that are pending, assigned or running, oldest
	// first, without Output.
	RunsActive(ctx context.Context) ([]*Run, error)
	RunCounts(ctx context.Context) (map[string]int64, error)
	// RunLastStates returns the state of the newest run of each named job
	// that has runs.
	RunLastStates(ctx context.Context, jobNames []string) (map[string]string, error)
	// RunInsert stores new runs (retries) in one transaction and sets each
	// one's ID in place (and State to pending, CreatedAt to now, if unset).
	RunInsert(ctx context.Context, runs []*Run) error
	// RunsTransition applies a batch of transitions in one transaction and
	// reports which ones matched.
	RunsTransition(ctx context.Context, ts []RunTransition) ([]bool, error)
	RunReport(ctx context.Context, p ReportParams) (ReportResult, error)
	// RunLog returns a run's stored output from byte offset on.
	RunLog(ctx context.Context, id, offset int64) ([]byte, error)
	// RunsPrune deletes runs that ended before before, with their output
	// and reports, and the fired triggers left with no run; it returns how
	// many runs it deleted. It works in bounded batches.
	RunsPrune(ctx context.Context, before time.Time) (int64, error)
	// RunReports applies a batch of reports in one transaction, in order.
	// A report refused on its own gets ReportResult.Err; the error return
	// is for the batch as a whole (nothing of it was stored).
	RunReports(ctx context.Context, ps []ReportParams) ([]ReportResult, error)

	// ScriptSave stores a new version of a job's script unless it equals
	// the newest, keeps the newest ScriptVersionsKept, and returns the
	// current version number.
	ScriptSave(ctx context.Context, jobID int64, source string, at time.Time) (int, error)
	// ScriptList lists a job's script versions, newest first, without
	// source.
	ScriptList(ctx context.Context, jobID int64) ([]*Script, error)
	ScriptGet(ctx context.Context, jobID int64, version int) (*Script, error)

	MissedList(ctx context.Context, p MissedListParams) ([]*Missed, error)
	MissedTotal(ctx context.Context) (int64, error)
	MissedAppend(ctx context.Context, ms []*MissedAppend) error
	MissedReplay(ctx context.Context, p ReplayParams) ([]*Trigger, error)

	// ExecutorUpsert registers an executor by (group, name), keeping its id
	// if it was known, and returns it.
	ExecutorUpsert(ctx context.Context, e *Executor) (*Executor, error)
	ExecutorGet(ctx context.Context, id string) (*Executor, error)
	ExecutorList(ctx context.Context) ([]*Executor, error)
	ExecutorSetState(ctx context.Context, id, state string, since time.Time) error
	ExecutorTouch(ctx context.Context, ids []string, lastSeen time.Time) error
}
