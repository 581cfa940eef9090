package api

// The executor protocol. An executor connects out to jobd over HTTP:
//
//  1. POST /api/v1/executor/register with a RegisterRequest; jobd answers
//     with the executor's id and the heartbeat interval. The group is created
//     on first registration. Running lists the runs the executor still holds
//     (after a reconnect); runs jobd believed it held that are not listed
//     become lost.
//  2. POST /api/v1/executor/{id}/poll with a PollRequest, repeatedly. Each
//     poll is a heartbeat carrying load; jobd holds it open up to Wait and
//     answers as soon as it has assignments or commands for the executor.
//     A poll that finds the executor unknown answers 404 (register again).
//  3. POST /api/v1/executor/{id}/reports with a ReportBatch: start, log and
//     result reports of any number of runs, in order per run. Reports are
//     idempotent by (run id, attempt, seq) and acknowledged only after the
//     store committed them; jobd commits a whole batch at once. (POST
//     /api/v1/runs/{id}/report takes a single Report, for simple clients.)
//  4. POST /api/v1/executor/{id}/deregister on a clean stop.

// RegisterRequest is the body of POST /api/v1/executor/register.
type RegisterRequest struct {
	Group   string            `json:"group"`
	Name    string            `json:"name"`
	Host    string            `json:"host"`
	Labels  map[string]string `json:"labels,omitempty"`
	Version string            `json:"version"`
	Slots   int               `json:"slots"`
	// Handlers lists the handler names an SDK executor serves.
	Handlers []string `json:"handlers,omitempty"`
	// Running lists run ids the executor still holds.
	Running []string `json:"running,omitempty"`
}

// RegisterResponse answers a registration.
type RegisterResponse struct {
	ID                string   `json:"id"`
	HeartbeatInterval Duration `json:"heartbeat_interval"`
	// Lost lists runs of Running that jobd no longer expects; the executor
	// should stop them.
	Lost []string `json:"lost,omitempty"`
}

// PollRequest is the body of POST /api/v1/executor/{id}/poll.
type PollRequest struct {
	// Running lists the run ids in progress on the executor.
	Running []string `json:"running"`
	// FreeSlots is how many more runs the executor accepts now.
	FreeSlots int `json:"free_slots"`
	// Wait is how long jobd may hold the poll open with nothing to say.
	Wait Duration `json:"wait"`
}

// PollResponse carries work and commands for an executor.
type PollResponse struct {
	Assignments []Assignment `json:"assignments,omitempty"`
	Commands    []Command    `json:"commands,omitempty"`
}

// Assignment hands one run to an executor.
type Assignment struct {
	RunID       string            `json:"run_id"`
	Job         string            `json:"job"`
	Attempt     int               `json:"attempt"`
	Kind        string            `json:"kind"`
	Command     []string          `json:"command,omitempty"`
	Script      string            `json:"script,omitempty"`
	Interpreter string            `json:"interpreter,omitempty"`
	HTTP        *HTTPRequest      `json:"http,omitempty"`
	Handler     string            `json:"handler,omitempty"`
	Params      map[string]string `json:"params,omitempty"`
	Timeout     Duration          `json:"timeout,omitempty"`
	ScheduledAt Time              `json:"scheduled_at"`
	TriggerID   string            `json:"trigger_id"`
	ShardIndex  int               `json:"shard_index"`
	ShardTotal  int               `json:"shard_total"`
	Replay      bool              `json:"replay,omitempty"`
}

// Command kinds sent to executors.
const (
	CommandKill = "kill"
	// CommandDrain: jobd sends no more runs; the executor finishes what it
	// runs, delivers every report, deregisters and stops.
	CommandDrain = "drain"
	// CommandUndrain cancels a drain that has not finished.
	CommandUndrain = "undrain"
	// CommandBye: this jobd is shutting down; an executor with several
	// servers turns to the next one.
	CommandBye = "bye"
)

// Command asks an executor to do something other than run a job.
type Command struct {
	Type  string `json:"type"`
	RunID string `json:"run_id,omitempty"`
}

// Report types.
const (
	ReportStart  = "start"
	ReportLog    = "log"
	ReportResult = "result"
)

// Report is the body of POST /api/v1/runs/{id}/report.
type Report struct {
	ExecutorID string `json:"executor_id"`
	Attempt    int    `json:"attempt"`
	// Seq orders the reports of one run attempt, from 1; a report with a Seq
	// already stored is acknowledged again and changes nothing.
	Seq  int64  `json:"seq"`
	Type string `json:"type"`
	At   Time   `json:"at"`
	// Log is the output of a log report.
	Log string `json:"log,omitempty"`
	// State is the final state of a result report: succeeded, failed,
	// timed_out or killed.
	State    string `json:"state,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty"`
	Error    string `json:"error,omitempty"`
}

// ReportResponse acknowledges a report once it is stored.
type ReportResponse struct {
	OK bool `json:"ok"`
	// Duplicate is true when the report had been stored before.
	Duplicate bool `json:"duplicate,omitempty"`
	// Error says why a report of a batch was refused for good (an unknown
	// run, an invalid field); OK is then false and resending it is useless.
	Error string `json:"error,omitempty"`
}

// RunReport is one report of a ReportBatch.
type RunReport struct {
	RunID string `json:"run_id"`
	Report
}

// ReportBatch is the body of POST /api/v1/executor/{id}/reports. Reports of
// one run must be in seq order; jobd applies them in the order given.
type ReportBatch struct {
	Reports []RunReport `json:"reports"`
}

// ReportBatchResponse answers a ReportBatch once it is stored: one result
// per report, in the same order. A batch that could not be stored is
// answered with an error status instead, and is to be sent again.
type ReportBatchResponse struct {
	Results []ReportResponse `json:"results"`
}
