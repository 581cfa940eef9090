package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strings"
)

// Event types sent on the event stream (GET /api/v1/events).
const (
	// EventHello is the first event of every stream; it carries Status.
	EventHello = "hello"
	// EventRun tells that a run was created or changed state (Run).
	EventRun = "run"
	// EventJob tells that a job was created, changed or deleted (Job).
	EventJob = "job"
	// EventExecutor carries an executor whose state, load or drain
	// progress changed (Executor).
	EventExecutor = "executor"
	// EventMissed tells that missed triggers were recorded or replayed
	// (Missed).
	EventMissed = "missed"
	// EventResync tells that events were dropped because the client read
	// too slowly or too much changed at once: reload what is shown.
	EventResync = "resync"
)

// Event is one message of the event stream. Type says which field is set.
// Events tell what changed; a client that shows a page of runs or jobs
// reloads that page from the API when an event touches it.
type Event struct {
	Type     string       `json:"type"`
	Time     Time         `json:"time"`
	Status   *Status      `json:"status,omitempty"`
	Run      *RunEvent    `json:"run,omitempty"`
	Job      *JobEvent    `json:"job,omitempty"`
	Executor *Executor    `json:"executor,omitempty"`
	Missed   *MissedEvent `json:"missed,omitempty"`
}

// RunEvent is a run that was created or changed state. Job and ExecutorID
// are empty when the change did not carry them.
type RunEvent struct {
	ID         string `json:"id"`
	Job        string `json:"job,omitempty"`
	State      string `json:"state"`
	ExecutorID string `json:"executor_id,omitempty"`
	Attempt    int    `json:"attempt,omitempty"`
}

// JobEvent is a job that was created, changed (paused, resumed, edited) or
// deleted.
type JobEvent struct {
	Name    string `json:"name"`
	Deleted bool   `json:"deleted,omitempty"`
}

// MissedEvent tells that Count missed triggers of Job were recorded
// (positive) or replayed (negative); Job is empty when several jobs
// changed.
type MissedEvent struct {
	Job   string `json:"job,omitempty"`
	Count int64  `json:"count"`
}

// maxEventLine bounds one line of the event stream.
const maxEventLine = 1 << 20

// Events opens jobd's event stream (GET /events). The sequence yields
// events as they arrive, starting with EventHello; it ends when ctx ends
// (without an error) or yields one error when the stream cannot be opened
// or breaks (jobd stopped). Reconnecting is up to the caller.
func (c *Client) Events(ctx context.Context) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		resp, err := c.send(ctx, http.MethodGet, "/events", nil, nil, "text/event-stream")
		if err != nil {
			yield(Event{}, err)
			return
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), maxEventLine)
		for sc.Scan() {
			line := sc.Text()
			data, ok := strings.CutPrefix(line, "data:")
			if !ok {
				continue // event names, comments (keep-alives), blank separators
			}
			var ev Event
			if err := json.Unmarshal([]byte(strings.TrimSpace(data)), &ev); err != nil {
				yield(Event{}, fmt.Errorf("GET /events: decode event: %w", err))
				return
			}
			if !yield(ev, nil) {
				return
			}
		}
		err = sc.Err()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		if errors.Is(err, context.Canceled) {
			return
		}
		yield(Event{}, fmt.Errorf("GET /events: stream ended: %w", err))
	}
}
