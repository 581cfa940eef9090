package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/store"
)

// Server is jobd's HTTP API. The admin handler serves every route (the
// unix socket); the executor handler serves only the executor protocol and
// health (the TCP listener).
type Server struct {
	d   *Daemon
	log *slog.Logger
}

// AdminHandler returns the handler for the unix socket.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	s.executorRoutes(mux)
	p := api.Prefix
	mux.HandleFunc("GET "+p+"/status", s.handleStatus)
	mux.HandleFunc("GET "+p+"/events", s.handleEvents)
	mux.HandleFunc("GET "+p+"/jobs", s.handleJobList)
	mux.HandleFunc("POST "+p+"/jobs", s.handleJobCreate)
	mux.HandleFunc("GET "+p+"/jobs/{name}", s.handleJobGet)
	mux.HandleFunc("PUT "+p+"/jobs/{name}", s.handleJobPut)
	mux.HandleFunc("DELETE "+p+"/jobs/{name}", s.handleJobDelete)
	mux.HandleFunc("POST "+p+"/jobs/{name}/pause", s.handlePause(true))
	mux.HandleFunc("POST "+p+"/jobs/{name}/resume", s.handlePause(false))
	mux.HandleFunc("POST "+p+"/jobs/{name}/trigger", s.handleTrigger)
	mux.HandleFunc("GET "+p+"/jobs/{name}/scripts", s.handleScriptList)
	mux.HandleFunc("GET "+p+"/jobs/{name}/scripts/{version}", s.handleScriptGet)
	mux.HandleFunc("POST "+p+"/apply", s.handleApply)
	mux.HandleFunc("GET "+p+"/runs", s.handleRunList)
	mux.HandleFunc("GET "+p+"/runs/{id}", s.handleRunGet)
	mux.HandleFunc("POST "+p+"/runs/{id}/kill", s.handleRunKill)
	mux.HandleFunc("GET "+p+"/runs/{id}/logs", s.handleRunLogs)
	mux.HandleFunc("GET "+p+"/missed", s.handleMissedList)
	mux.HandleFunc("POST "+p+"/replay", s.handleReplay)
	mux.HandleFunc("GET "+p+"/executors", s.handleExecutorList)
	mux.HandleFunc("GET "+p+"/executors/{id}", s.handleExecutorGet)
	mux.HandleFunc("POST "+p+"/executors/{id}/drain", s.handleDrain)
	mux.HandleFunc("POST "+p+"/executors/{id}/undrain", s.handleUndrain)
	return s.guard(mux)
}

// ExecutorHandler returns the handler for the TCP listener.
//
// Executor routes need the group's token when executor_tokens is set; the
// admin routes need admin_token and are refused without it.
func (s *Server) ExecutorHandler() http.Handler {
	mux := http.NewServeMux()
	s.executorRoutes(mux)
	mux.Handle(api.Prefix+"/", s.adminOverTCP(s.AdminHandler()))
	return remote(s.guard(mux))
}

func (s *Server) executorRoutes(mux *http.ServeMux) {
	p := api.Prefix
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.handleReady)
	mux.HandleFunc("POST "+p+"/executor/register", s.handleRegister)
	mux.HandleFunc("POST "+p+"/executor/{id}/poll", s.handlePoll)
	mux.HandleFunc("POST "+p+"/executor/{id}/deregister", s.handleDeregister)
	mux.HandleFunc("POST "+p+"/executor/{id}/drain", s.handleDrain)
	mux.HandleFunc("POST "+p+"/runs/{id}/report", s.handleReport)
	mux.HandleFunc("POST "+p+"/executor/{id}/reports", s.handleReports)
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if !s.d.ready.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "starting"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.d.Status(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) handleJobList(w http.ResponseWriter, r *http.Request) {
	limit, err := queryInt(r, "limit", 1000, 10000)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	rows, err := s.d.store.JobList(r.Context(), store.JobListParams{Group: q.Get("group"), After: q.Get("after"), Limit: limit})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]api.Job, 0, len(rows))
	names := make([]string, 0, len(rows))
	ids := make([]int64, 0, len(rows))
	for _, row := range rows {
		names = append(names, row.Name)
		ids = append(ids, row.ID)
	}
	armed := s.d.sched.NextArmed(ids)
	last, err := s.d.store.RunLastStates(r.Context(), names)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for _, row := range rows {
		j, err := compileJob(row)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out = append(out, s.apiJobWith(r.Context(), j, last[row.Name], nextFire(j, armed)))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleJobCreate(w http.ResponseWriter, r *http.Request) {
	var spec api.JobSpec
	if err := decode(r, &spec); err != nil {
		s.writeError(w, r, err)
		return
	}
	j, err := s.d.sched.CreateJob(r.Context(), spec)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, s.apiJob(r.Context(), j))
}

func (s *Server) handleJobGet(w http.ResponseWriter, r *http.Request) {
	row, err := s.d.store.JobGet(r.Context(), r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, fmt.Errorf("job %s: %w", r.PathValue("name"), err))
		return
	}
	j, err := compileJob(row)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.apiJob(r.Context(), j))
}

func (s *Server) handleJobPut(w http.ResponseWriter, r *http.Request) {
	var spec api.JobSpec
	if err := decode(r, &spec); err != nil {
		s.writeError(w, r, err)
		return
	}
	j, _, err := s.d.sched.UpdateJob(r.Context(), r.PathValue("name"), spec)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.apiJob(r.Context(), j))
}

func (s *Server) handleJobDelete(w http.ResponseWriter, r *http.Request) {
	if err := s.d.sched.DeleteJob(r.Context(), r.PathValue("name")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handlePause(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		j, err := s.d.sched.SetPaused(r.Context(), r.PathValue("name"), paused)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, s.apiJob(r.Context(), j))
	}
}

func (s *Server) handleTrigger(w http.ResponseWriter, r *http.Request) {
	var req api.TriggerRequest
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	res, j, err := s.d.sched.TriggerNow(r.Context(), r.PathValue("name"), req.Params)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := api.TriggerResponse{TriggerID: strconv.FormatInt(res.TriggerID, 10), Job: j.row.Name, Runs: []api.Run{}}
	for _, run := range res.Runs {
		out.ScheduledAt = api.NewTime(run.ScheduledAt)
		out.Runs = append(out.Runs, toAPIRun(run))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleApply(w http.ResponseWriter, r *http.Request) {
	var req api.ApplyRequest
	if err := decode(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	resp, err := s.d.Apply(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleRunList(w http.ResponseWriter, r *http.Request) {
	limit, err := queryInt(r, "limit", 50, 10000)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	var before int64
	if b := q.Get("before"); b != "" {
		if before, err = strconv.ParseInt(b, 10, 64); err != nil {
			s.writeError(w, r, fieldErr("before", "%q: want a run id", b))
			return
		}
	}
	if st := q.Get("state"); st != "" && !validRunState(st) {
		s.writeError(w, r, fieldErr("state", "%q: not a run state", st))
		return
	}
	runs, err := s.d.store.RunList(r.Context(), store.RunListParams{JobName: q.Get("job"), State: q.Get("state"), ExecutorID: q.Get("executor"), Before: before, Limit: limit})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]api.Run, 0, len(runs))
	for _, run := range runs {
		out = append(out, toAPIRun(run))
	}
	writeJSON(w, http.StatusOK, out)
}

func validRunState(s string) bool { return slices.Contains(api.RunStates, s) }

func (s *Server) handleRunGet(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("run %q: %w", r.PathValue("id"), store.ErrNotFound))
		return
	}
	run, err := s.d.store.RunGet(r.Context(), id)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("run %d: %w", id, err))
		return
	}
	writeJSON(w, http.StatusOK, toAPIRun(run))
}

func (s *Server) handleRunKill(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("run %q: %w", r.PathValue("id"), store.ErrNotFound))
		return
	}
	run, err := s.d.sched.KillRun(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toAPIRun(run))
}

func parseQueryTime(r *http.Request, name string) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fieldErr(name, "%q: want an RFC 3339 time", v)
	}
	return t, nil
}

func (s *Server) handleMissedList(w http.ResponseWriter, r *http.Request) {
	since, err := parseQueryTime(r, "since")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	until, err := parseQueryTime(r, "until")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	job := r.URL.Query().Get("job")
	if job != "" {
		if _, err := s.d.store.JobGet(r.Context(), job); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.writeError(w, r, err)
			return
		}
	}
	rows, err := s.d.store.MissedList(r.Context(), store.MissedListParams{JobName: job, Since: since, Until: until})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]api.Missed, 0, len(rows))
	for _, m := range rows {
		out = append(out, api.Missed{ID: strconv.FormatInt(m.ID, 10), Job: m.JobName, From: api.NewTime(m.From),
			To: api.NewTime(m.To), Count: m.Count, Reason: m.Reason, RecordedAt: api.NewTime(m.RecordedAt)})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleReplay(w http.ResponseWriter, r *http.Request) {
	var req api.ReplayRequest
	if err := decode(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	resp, err := s.d.sched.Replay(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleExecutorList(w http.ResponseWriter, r *http.Request) {
	xs, err := s.d.disp.Executors(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, xs)
}

func (s *Server) handleExecutorGet(w http.ResponseWriter, r *http.Request) {
	x, err := s.d.disp.Executor(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, x)
}

// handleDrain serves both the admin drain and an executor draining itself
// (on the executor routes, with its group's token).
func (s *Server) handleDrain(w http.ResponseWriter, r *http.Request) {
	var req api.DrainRequest
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	id := r.PathValue("id")
	if strings.HasPrefix(r.URL.Path, api.Prefix+"/executor/") {
		if err := s.authorizeExecutor(r, id); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	x, err := s.d.disp.Drain(r.Context(), id, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, x)
}

func (s *Server) handleUndrain(w http.ResponseWriter, r *http.Request) {
	x, err := s.d.disp.Undrain(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, x)
}

func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	var req api.RegisterRequest
	if err := decode(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.authorizeGroup(r, req.Group); err != nil {
		s.writeError(w, r, err)
		return
	}
	resp, err := s.d.disp.Register(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handlePoll(w http.ResponseWriter, r *http.Request) {
	var req api.PollRequest
	if err := decode(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.authorizeExecutor(r, r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	resp, err := s.d.disp.Poll(r.Context(), r.PathValue("id"), req)
	if err != nil {
		if r.Context().Err() != nil {
			return // the executor went away
		}
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleDeregister(w http.ResponseWriter, r *http.Request) {
	if err := s.authorizeExecutor(r, r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.d.disp.Deregister(r.Context(), r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (s *Server) handleReport(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("run %q: %w", r.PathValue("id"), store.ErrNotFound))
		return
	}
	var rep api.Report
	if err := decode(r, &rep); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.authorizeExecutor(r, rep.ExecutorID); err != nil {
		s.writeError(w, r, err)
		return
	}
	resp, err := s.d.Report(r.Context(), id, rep)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleReports(w http.ResponseWriter, r *http.Request) {
	var batch api.ReportBatch
	if err := decode(r, &batch); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.authorizeExecutor(r, r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	resp, err := s.d.Reports(r.Context(), batch)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// apiJob renders a job with the state of its newest run and the current
// version of a script job's source.
func (s *Server) apiJob(ctx context.Context, j *compiledJob) api.Job {
	var last string
	if m, err := s.d.store.RunLastStates(ctx, []string{j.row.Name}); err == nil {
		last = m[j.row.Name]
	}
	return s.apiJobWith(ctx, j, last, nextFire(j, s.d.sched.NextArmed([]int64{j.row.ID})))
}

// apiJobWith is apiJob with the newest run's state and the next fire
// already known.
func (s *Server) apiJobWith(ctx context.Context, j *compiledJob, lastState string, next time.Time) api.Job {
	out := toAPIJob(j, lastState)
	if !j.row.Paused {
		out.NextFireAt = api.NewTime(next)
	}
	if out.Kind == api.KindScript {
		if vs, err := s.d.store.ScriptList(ctx, j.row.ID); err == nil && len(vs) > 0 {
			out.ScriptVersion = vs[0].Version
		}
	}
	return out
}

func (s *Server) handleScriptList(w http.ResponseWriter, r *http.Request) {
	row, err := s.d.store.JobGet(r.Context(), r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, fmt.Errorf("job %s: %w", r.PathValue("name"), err))
		return
	}
	vs, err := s.d.store.ScriptList(r.Context(), row.ID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]api.ScriptVersion, 0, len(vs))
	for _, v := range vs {
		out = append(out, api.ScriptVersion{Version: v.Version, CreatedAt: api.NewTime(v.CreatedAt), SHA256: v.SHA256, Size: v.Size})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleScriptGet(w http.ResponseWriter, r *http.Request) {
	row, err := s.d.store.JobGet(r.Context(), r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, fmt.Errorf("job %s: %w", r.PathValue("name"), err))
		return
	}
	v, err := strconv.Atoi(r.PathValue("version"))
	if err != nil {
		s.writeError(w, r, fmt.Errorf("script version %q: %w", r.PathValue("version"), store.ErrNotFound))
		return
	}
	sc, err := s.d.store.ScriptGet(r.Context(), row.ID, v)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(sc.Source))
}

// toAPIRun renders a stored run.
func toAPIRun(r *store.Run) api.Run {
	return api.Run{
		ID: strconv.FormatInt(r.ID, 10), Job: r.JobName, TriggerID: strconv.FormatInt(r.TriggerID, 10),
		State: r.State, Origin: r.Origin, ScheduledAt: api.NewTime(r.ScheduledAt), CreatedAt: api.NewTime(r.CreatedAt),
		AssignedAt: api.NewTime(r.AssignedAt), StartedAt: api.NewTime(r.StartedAt), FinishedAt: api.NewTime(r.FinishedAt),
		Executor: r.ExecutorName, ExecutorID: r.ExecutorID, Attempt: r.Attempt, ExitCode: r.ExitCode,
		Error: r.Error, Output: r.Output, Replay: r.Replay, ShardIndex: r.ShardIndex, ShardTotal: r.ShardTotal,
		Params: r.Params,
	}
}
