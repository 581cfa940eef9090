package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// waitTimeout is how long a test waits for an event before it fails: long,
// because a loaded CI machine is slow, and never part of an assertion.
const waitTimeout = 30 * time.Second

// fakeJobd is a jobd that speaks the executor protocol in memory and
// records everything it is sent.
type fakeJobd struct {
	t   *testing.T
	srv *httptest.Server // the first of servers
	mux *http.ServeMux
	// servers front the same jobd, like several jobd on one PostgreSQL.
	servers []*fakeServer

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change

	// Behaviour, set by tests (under mu once the agent runs).
	ignoreFreeSlots bool              // hand out every pending assignment at once
	failReports     map[string][]int  // run id → statuses for the next report requests holding its reports
	refuseRuns      map[string]string // run id → error refusing each of its reports in a batch
	maxBatch        int               // answer 413 to batches of more reports; 0: no limit
	holdReports     chan struct{}     // report requests wait until it is closed, when set
	unknownPolls    int               // polls to answer 404
	token           string            // the bearer token expected ("test-token")
	refuseToken     bool              // answer 401 to every request

	pending  []api.Assignment
	commands []api.Command

	registers    []api.RegisterRequest
	polls        []api.PollRequest
	batches      [][]api.RunReport       // every report request, answered or not
	reports      map[string][]api.Report // stored, in order, once each
	tries        map[string][][]int64    // run id → seqs of the run in every report request
	refused      []string                // "RUN:SEQ" of the reports refused for good
	duplicates   int                     // reports stored before and sent again
	deregistered int
	drains       []api.DrainRequest // drain requests of the executor itself
	pollsAborted int                // polls the agent gave up while jobd held them
	events       []string           // "register", "start:RUN", "result:RUN", "drain", "deregister"
}

func newFakeJobd(t *testing.T) *fakeJobd {
	t.Helper()
	f := &fakeJobd{
		t:           t,
		changed:     make(chan struct{}),
		failReports: map[string][]int{},
		refuseRuns:  map[string]string{},
		reports:     map[string][]api.Report{},
		tries:       map[string][][]int64{},
		token:       "test-token",
	}
	mux := http.NewServeMux()
	f.mux = mux
	mux.HandleFunc("POST /api/v1/executor/register", f.handleRegister)
	mux.HandleFunc("POST /api/v1/executor/{id}/poll", f.handlePoll)
	mux.HandleFunc("POST /api/v1/executor/{id}/deregister", f.handleDeregister)
	mux.HandleFunc("POST /api/v1/executor/{id}/drain", f.handleDrain)
	mux.HandleFunc("POST /api/v1/executor/{id}/reports", f.handleReports)
	mux.HandleFunc("POST /api/v1/runs/{id}/report", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("report sent alone to %s instead of in a batch", r.URL.Path)
		writeJSON(w, http.StatusGone, api.ErrorBody{Error: "send batches"})
	})
	f.srv = f.addServer(false).srv
	return f
}

// fakeServer is one address of a fakeJobd.
type fakeServer struct {
	srv *httptest.Server
	// Guarded by fakeJobd.mu.
	down    bool // refuse requests: close the connection without an answer
	served  int  // requests answered
	refused int  // requests refused while down
}

// addServer starts one more server fronting f, with a TLS certificate of
// its own when tls is set.
func (f *fakeJobd) addServer(tls bool) *fakeServer {
	fs := &fakeServer{}
	fs.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		down := fs.down
		if down {
			fs.refused++
		} else {
			fs.served++
		}
		f.notifyLocked()
		f.mu.Unlock()
		if down {
			// Like a jobd that is gone: the connection closes unanswered.
			panic(http.ErrAbortHandler)
		}
		f.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), fakeServerKey{}, fs)))
	}))
	// Aborted connections are the point of a down server: do not log them.
	fs.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tls {
		fs.srv.StartTLS()
	} else {
		fs.srv.Start()
	}
	f.t.Cleanup(fs.srv.Close)
	f.mu.Lock()
	f.servers = append(f.servers, fs)
	f.mu.Unlock()
	return fs
}

type fakeServerKey struct{}

// downLocked reports whether the server that received r went down since;
// its handler must then answer nothing, like a jobd that died.
func (f *fakeJobd) downLocked(r *http.Request) bool {
	fs, _ := r.Context().Value(fakeServerKey{}).(*fakeServer)
	return fs != nil && fs.down
}

// setDown takes a server down (every request, and those in progress, end
// with the connection closed) or back up.
func (f *fakeJobd) setDown(fs *fakeServer, down bool) {
	f.mu.Lock()
	fs.down = down
	f.notifyLocked()
	f.mu.Unlock()
	if down {
		fs.srv.CloseClientConnections()
	}
}

// counts returns the requests a server answered and refused.
func (f *fakeJobd) counts(fs *fakeServer) (served, refused int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fs.served, fs.refused
}

func (f *fakeJobd) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// waitFor waits until cond, called with f.mu held, is true.
func (f *fakeJobd) waitFor(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		ok, ch := cond(), f.changed
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			f.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// assign queues runs for the next polls.
func (f *fakeJobd) assign(asgs ...api.Assignment) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending = append(f.pending, asgs...)
	f.notifyLocked()
}

// command queues a command for the next poll.
func (f *fakeJobd) command(c api.Command) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commands = append(f.commands, c)
	f.notifyLocked()
}

// result waits for the result report of a run and returns it.
func (f *fakeJobd) result(runID string) api.Report {
	f.t.Helper()
	var res api.Report
	f.waitFor("result of "+runID, func() bool {
		reps := f.reports[runID]
		if len(reps) > 0 && reps[len(reps)-1].Type == api.ReportResult {
			res = reps[len(reps)-1]
			return true
		}
		return false
	})
	return res
}

// waitStarted waits for the start report of a run.
func (f *fakeJobd) waitStarted(runID string) {
	f.t.Helper()
	f.waitFor("start of "+runID, func() bool { return len(f.reports[runID]) > 0 })
}

// waitLog waits until the log of a run contains s, and returns the log.
func (f *fakeJobd) waitLog(runID, s string) string {
	f.t.Helper()
	var out string
	f.waitFor(fmt.Sprintf("%q in the log of %s", s, runID), func() bool {
		out = f.logLocked(runID)
		return strings.Contains(out, s)
	})
	return out
}

func (f *fakeJobd) runReports(runID string) []api.Report {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reports[runID])
}

func (f *fakeJobd) log(runID string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logLocked(runID)
}

func (f *fakeJobd) logLocked(runID string) string {
	var b strings.Builder
	for _, r := range f.reports[runID] {
		b.WriteString(r.Log)
	}
	return b.String()
}

func (f *fakeJobd) handleRegister(w http.ResponseWriter, r *http.Request) {
	var req api.RegisterRequest
	if !f.decode(w, r, &req) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.registers = append(f.registers, req)
	f.events = append(f.events, "register")
	f.notifyLocked()
	writeJSON(w, http.StatusOK, api.RegisterResponse{ID: "ex-1", HeartbeatInterval: api.Duration(5 * time.Second)})
}

func (f *fakeJobd) handlePoll(w http.ResponseWriter, r *http.Request) {
	var req api.PollRequest
	if !f.decode(w, r, &req) {
		return
	}
	f.mu.Lock()
	f.polls = append(f.polls, req)
	f.notifyLocked()
	if f.unknownPolls > 0 {
		f.unknownPolls--
		f.mu.Unlock()
		writeJSON(w, http.StatusNotFound, api.ErrorBody{Error: "unknown executor"})
		return
	}
	f.mu.Unlock()

	wait := time.NewTimer(req.Wait.D())
	defer wait.Stop()
	for {
		f.mu.Lock()
		if f.downLocked(r) {
			f.mu.Unlock()
			panic(http.ErrAbortHandler)
		}
		var resp api.PollResponse
		n := len(f.pending)
		if !f.ignoreFreeSlots {
			// Like jobd, count a result reported since the poll began as a
			// freed slot, so a full executor gets work without waiting for
			// its next poll.
			free := req.FreeSlots
			for _, id := range req.Running {
				if reps := f.reports[id]; len(reps) > 0 && reps[len(reps)-1].Type == api.ReportResult {
					free++
				}
			}
			n = min(n, free)
		}
		resp.Assignments, f.pending = f.pending[:n:n], f.pending[n:]
		resp.Commands, f.commands = f.commands, nil
		ch := f.changed
		f.mu.Unlock()
		if len(resp.Assignments) > 0 || len(resp.Commands) > 0 {
			writeJSON(w, http.StatusOK, resp)
			return
		}
		select {
		case <-ch:
		case <-wait.C:
			writeJSON(w, http.StatusOK, resp)
			return
		case <-r.Context().Done():
			f.mu.Lock()
			f.pollsAborted++
			f.notifyLocked()
			f.mu.Unlock()
			return
		}
	}
}

func (f *fakeJobd) handleDeregister(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deregistered++
	f.events = append(f.events, "deregister")
	f.notifyLocked()
	writeJSON(w, http.StatusOK, struct{}{})
}

// handleDrain records an executor draining itself; like jobd, it routes
// nothing more to it (the assignments pending stay pending).
func (f *fakeJobd) handleDrain(w http.ResponseWriter, r *http.Request) {
	var req api.DrainRequest
	if !f.decode(w, r, &req) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drains = append(f.drains, req)
	f.events = append(f.events, "drain")
	f.notifyLocked()
	writeJSON(w, http.StatusOK, api.Executor{ID: r.PathValue("id"), State: api.ExecutorDraining})
}

// handleReports stores a batch of reports like jobd: all or nothing, each
// report acknowledged or refused on its own.
func (f *fakeJobd) handleReports(w http.ResponseWriter, r *http.Request) {
	var batch api.ReportBatch
	if !f.decode(w, r, &batch) {
		return
	}
	if id := r.PathValue("id"); id != "ex-1" {
		f.t.Errorf("reports of executor %q", id)
	}
	f.mu.Lock()
	f.batches = append(f.batches, batch.Reports)
	hold := f.holdReports
	f.notifyLocked()
	f.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.downLocked(r) {
		panic(http.ErrAbortHandler)
	}
	defer f.notifyLocked()
	seqs := map[string][]int64{} // of each run in this request
	for _, rr := range batch.Reports {
		seqs[rr.RunID] = append(seqs[rr.RunID], rr.Seq)
	}
	status := 0
	for id, s := range seqs {
		f.tries[id] = append(f.tries[id], s)
		if st := f.failReports[id]; len(st) > 0 {
			status, f.failReports[id] = st[0], st[1:]
		}
	}
	if status == 0 && f.maxBatch > 0 && len(batch.Reports) > f.maxBatch {
		status = http.StatusRequestEntityTooLarge
	}
	if status != 0 {
		writeJSON(w, status, api.ErrorBody{Error: http.StatusText(status)})
		return
	}
	resp := api.ReportBatchResponse{Results: make([]api.ReportResponse, len(batch.Reports))}
	for i, rr := range batch.Reports {
		resp.Results[i] = f.storeLocked(rr.RunID, rr.Report)
	}
	writeJSON(w, http.StatusOK, resp)
}

// storeLocked stores one report of a batch, once.
func (f *fakeJobd) storeLocked(id string, rep api.Report) api.ReportResponse {
	if msg, ok := f.refuseRuns[id]; ok {
		f.refused = append(f.refused, fmt.Sprintf("%s:%d", id, rep.Seq))
		return api.ReportResponse{Error: msg}
	}
	stored := f.reports[id]
	if rep.Seq <= int64(len(stored)) {
		f.duplicates++
		return api.ReportResponse{OK: true, Duplicate: true}
	}
	if rep.Seq != int64(len(stored))+1 {
		f.t.Errorf("run %s: report seq %d after seq %d", id, rep.Seq, len(stored))
		return api.ReportResponse{Error: "seq out of order"}
	}
	if rep.ExecutorID != "ex-1" {
		f.t.Errorf("run %s: report from executor %q", id, rep.ExecutorID)
	}
	f.reports[id] = append(stored, rep)
	switch rep.Type {
	case api.ReportStart, api.ReportResult:
		f.events = append(f.events, rep.Type+":"+id)
	}
	return api.ReportResponse{OK: true}
}

func (f *fakeJobd) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	f.mu.Lock()
	token, refuse := f.token, f.refuseToken
	f.mu.Unlock()
	if refuse {
		writeJSON(w, http.StatusUnauthorized, api.ErrorBody{Error: "invalid token"})
		return false
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+token {
		f.t.Errorf("%s: Authorization %q", r.URL.Path, got)
	}
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		f.t.Errorf("%s: decode: %v", r.URL.Path, err)
		writeJSON(w, http.StatusBadRequest, api.ErrorBody{Error: err.Error()})
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// testLogger writes the agent's logs to t.Log until the test ends.
func testLogger(t *testing.T) *slog.Logger {
	tw := &testWriter{t: t}
	t.Cleanup(tw.stop) // registered first, so it runs after the agent stopped
	return slog.New(slog.NewTextHandler(tw, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}

// testBundle is an agent running against a fake jobd.
type testBundle struct {
	jobd  *fakeJobd
	agent *Agent
	stop  func() error // cancels Run's context and returns Run's error
	done  chan struct{}
}

// setup starts an agent against a new fake jobd. configure may adjust the
// config and the fake before the agent runs.
func setup(t *testing.T, configure func(*Config, *fakeJobd)) *testBundle {
	t.Helper()
	return setupWith(t, newFakeJobd(t), configure)
}

// setupWith is setup against the fake jobd f.
func setupWith(t *testing.T, f *fakeJobd, configure func(*Config, *fakeJobd)) *testBundle {
	t.Helper()
	a, err := New(testConfig(t, f, configure))
	require.NoError(t, err)
	return startAgent(t, f, a)
}

// testConfig is the config of the agents of setup.
func testConfig(t *testing.T, f *fakeJobd, configure func(*Config, *fakeJobd)) Config {
	t.Helper()
	logger := testLogger(t)
	cfg := Config{
		Servers:       []string{f.srv.URL},
		Group:         "test",
		Name:          "agent-1",
		Token:         "test-token",
		Slots:         4,
		StateDir:      t.TempDir(),
		Logger:        logger,
		PollWait:      2 * time.Second,
		KillGrace:     5 * time.Second,
		ShutdownGrace: waitTimeout,
	}
	if configure != nil {
		configure(&cfg, f)
	}
	return cfg
}

func startAgent(t *testing.T, f *fakeJobd, a *Agent) *testBundle {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &testBundle{jobd: f, agent: a, done: make(chan struct{})}
	var runErr error
	go func() {
		defer close(b.done)
		runErr = a.Run(ctx)
	}()
	b.stop = func() error {
		cancel()
		select {
		case <-b.done:
		case <-time.After(2 * waitTimeout):
			t.Fatal("Run did not return")
		}
		return runErr
	}
	t.Cleanup(func() { _ = b.stop() })
	return b
}

// commandJob returns a command assignment.
func commandJob(runID string, argv ...string) api.Assignment {
	return api.Assignment{
		RunID:       runID,
		Job:         "job-" + runID,
		Attempt:     1,
		Kind:        api.KindCommand,
		Command:     argv,
		ScheduledAt: api.NewTime(time.Date(2025, 3, 4, 5, 6, 7, 890_000_000, time.UTC)),
		TriggerID:   "trig-" + runID,
	}
}
