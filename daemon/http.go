package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/store"
)

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		slog.Debug("write response", "err", err)
	}
}

// errorStatus maps an error to its HTTP status: the one place that does.
func errorStatus(err error) int {
	var fe *FieldError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict
	case errors.As(err, &fe):
		return http.StatusBadRequest
	case errors.Is(err, store.ErrNotFound), errors.Is(err, ErrUnknownExecutor):
		return http.StatusNotFound
	case errors.Is(err, ErrNoExecutor):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// writeError answers err as an api.ErrorBody.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := errorStatus(err)
	body := api.ErrorBody{Error: err.Error()}
	var fe *FieldError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		body = api.ErrorBody{Error: fmt.Sprintf("request body larger than %d bytes", mbe.Limit), Field: "body"}
	case errors.As(err, &fe):
		body.Field = fe.Field
	}
	if status == http.StatusInternalServerError {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, body)
}

// decode reads a JSON body into v; unknown fields are errors.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return &FieldError{Field: "body", Err: fmt.Errorf("invalid JSON: %w", err)}
	}
	return nil
}

// queryInt reads an integer query parameter with a default and a maximum.
func queryInt(r *http.Request, name string, def, maxV int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fieldErr(name, "%q: want a non-negative integer", s)
	}
	return min(n, maxV), nil
}

// guard refuses browser-originated requests and limits bodies.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") != "" || r.Header.Get("Referer") != "" {
			writeJSON(w, http.StatusForbidden, api.ErrorBody{Error: "requests from browsers are refused"})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.d.cfg.MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}
