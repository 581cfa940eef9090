package daemon

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/store"
)

// runState reads a run's state without its output.
func (d *Daemon) runState(ctx context.Context, id int64) (string, error) {
	// RunList leaves output out; the bound selects exactly run id.
	runs, err := d.store.RunList(ctx, store.RunListParams{Before: id + 1, Limit: 1})
	if err != nil {
		return "", err
	}
	if len(runs) == 0 || runs[0].ID != id {
		return "", fmt.Errorf("run %d: %w", id, store.ErrNotFound)
	}
	return runs[0].State, nil
}

// handleRunLogs serves a run's output from ?offset= (bytes). With
// ?follow=true it streams new output as executors report it and ends once
// the run has ended and all its output was sent.
func (s *Server) handleRunLogs(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("run %q: %w", r.PathValue("id"), store.ErrNotFound))
		return
	}
	var offset int64
	if v := r.URL.Query().Get("offset"); v != "" {
		if offset, err = strconv.ParseInt(v, 10, 64); err != nil || offset < 0 {
			s.writeError(w, r, fieldErr("offset", "%q: want a byte offset", v))
			return
		}
	}
	follow := r.URL.Query().Get("follow") == "true" || r.URL.Query().Get("follow") == "1"
	state, err := s.d.runState(ctx, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set(api.RunStateHeader, state)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	for {
		// The state is read before the output, so once it is final the
		// output read after it is complete.
		wake := s.d.logs.Wait()
		if state, err = s.d.runState(ctx, id); err != nil {
			return
		}
		data, err := s.d.store.RunLog(ctx, id, offset)
		if err != nil {
			s.log.Warn("read run log", LogKeyRun, id, "err", err)
			return
		}
		if len(data) > 0 {
			if _, err := w.Write(data); err != nil {
				return
			}
			offset += int64(len(data))
			if flusher != nil {
				flusher.Flush()
			}
		}
		if !follow || api.RunEnded(state) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-s.d.stopping:
			return // jobctl reconnects from its offset
		case <-wake:
		case <-time.After(2 * time.Second):
		}
	}
}
