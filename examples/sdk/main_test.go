package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// miniJobd hands out a fixed set of runs and records their reports.
type miniJobd struct {
	mu      sync.Mutex
	pending []api.Assignment
	reports map[string][]api.Report
	changed chan struct{}
	token   string
}

func newMiniJobd(t *testing.T, asgs ...api.Assignment) (*miniJobd, *httptest.Server) {
	t.Helper()
	m := &miniJobd{pending: asgs, reports: map[string][]api.Report{}, changed: make(chan struct{})}
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("POST /api/v1/executor/register", func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		m.token = r.Header.Get("Authorization")
		m.mu.Unlock()
		reply(w, api.RegisterResponse{ID: "ex-1", HeartbeatInterval: api.Duration(5 * time.Second)})
	})
	mux.HandleFunc("POST /api/v1/executor/{id}/poll", func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		asgs := m.pending
		m.pending = nil
		m.mu.Unlock()
		if len(asgs) == 0 {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(time.Second):
			}
		}
		reply(w, api.PollResponse{Assignments: asgs})
	})
	mux.HandleFunc("POST /api/v1/executor/{id}/reports", func(w http.ResponseWriter, r *http.Request) {
		var batch api.ReportBatch
		if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
			t.Errorf("decode reports: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		m.mu.Lock()
		resp := api.ReportBatchResponse{}
		for _, rr := range batch.Reports {
			m.reports[rr.RunID] = append(m.reports[rr.RunID], rr.Report)
			resp.Results = append(resp.Results, api.ReportResponse{OK: true})
		}
		close(m.changed)
		m.changed = make(chan struct{})
		m.mu.Unlock()
		reply(w, resp)
	})
	mux.HandleFunc("POST /api/v1/executor/{id}/deregister", func(w http.ResponseWriter, r *http.Request) {
		reply(w, struct{}{})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return m, srv
}

// result waits for the result of a run and returns it with the run's log.
func (m *miniJobd) result(t *testing.T, runID string) (api.Report, string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		m.mu.Lock()
		reps, ch := m.reports[runID], m.changed
		m.mu.Unlock()
		if n := len(reps); n > 0 && reps[n-1].Type == api.ReportResult {
			var log strings.Builder
			for _, r := range reps {
				log.WriteString(r.Log)
			}
			return reps[n-1], log.String()
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no result for %s", runID)
		}
	}
}

func handlerRun(id, handler string, params map[string]string, timeout time.Duration) api.Assignment {
	return api.Assignment{RunID: id, Job: "job-" + id, Attempt: 1, Kind: api.KindHandler, Handler: handler,
		Params: params, Timeout: api.Duration(timeout), TriggerID: "t-" + id}
}

func TestRun(t *testing.T) {
	t.Parallel()
	m, srv := newMiniJobd(t,
		handlerRun("hello", "hello", map[string]string{"who": "world", "lang": "en"}, 0),
		handlerRun("nap", "sleep", map[string]string{"seconds": "0.05"}, 0),
		handlerRun("long", "sleep", map[string]string{"seconds": "3600"}, 100*time.Millisecond),
		handlerRun("bad", "sleep", map[string]string{"seconds": "soon"}, 0),
	)
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--server", srv.URL, "--group", "demo"},
			func(k string) string { return map[string]string{"JOBD_EXECUTOR_TOKEN": "env-token"}[k] }, &stderr)
	}()

	res, log := m.result(t, "hello")
	require.Equal(t, api.RunSucceeded, res.State)
	require.Equal(t, "hello from run hello of job job-hello (attempt 1, shard 0 of 1)\nparam lang=en\nparam who=world\n", log)

	res, log = m.result(t, "nap")
	require.Equal(t, api.RunSucceeded, res.State)
	require.Equal(t, "sleeping for 50ms\nawake\n", log)

	res, log = m.result(t, "long")
	require.Equal(t, api.RunTimedOut, res.State, "the sleep ends when the run times out")
	require.Equal(t, "sleeping for 1h0m0s\nwoken early: timed out after 100ms\n", log)

	res, _ = m.result(t, "bad")
	require.Equal(t, api.RunFailed, res.State)
	require.Equal(t, `param seconds "soon": want a number of seconds, 0 or more`, res.Error)

	cancel()
	select {
	case code := <-done:
		require.Equal(t, 0, code, "stderr: %s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	require.Equal(t, "Bearer env-token", m.token)
}

func TestRun_BadCommandLine(t *testing.T) {
	t.Parallel()
	noEnv := func(string) string { return "" }
	for _, args := range [][]string{
		{"--nope"},
		{"extra"},
		{"--server", "ftp://jobd"},
		{"--group", " "},
	} {
		var stderr bytes.Buffer
		require.Equal(t, 2, run(context.Background(), args, noEnv, &stderr), "%v", args)
		require.NotEmpty(t, stderr.String())
	}
}
