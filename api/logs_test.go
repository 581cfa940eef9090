package api_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// serveUnixHandler serves h on a unix socket in a fresh temp dir and
// returns the socket path.
func serveUnixHandler(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "jd")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	socket := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", socket)
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return socket
}

// readFullOrFail reads exactly n bytes of r, failing the test if they do not
// come within a generous bound (a hang means the client buffered the body).
func readFullOrFail(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	type res struct {
		b   []byte
		err error
	}
	got := make(chan res, 1)
	go func() {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		got <- res{b, err}
	}()
	select {
	case r := <-got:
		require.NoError(t, r.err)
		return string(r.b)
	case <-time.After(10 * time.Second):
		t.Fatal("the first chunk did not arrive while the server held the stream open")
		return ""
	}
}

func TestClient_RunLogs(t *testing.T) {
	t.Parallel()

	t.Run("StreamsAsItArrives", func(t *testing.T) {
		t.Parallel()
		type req struct{ path, query, accept string }
		seen := make(chan req, 1)
		release := make(chan struct{})
		socket := serveUnixHandler(t, func(w http.ResponseWriter, r *http.Request) {
			seen <- req{r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Accept")}
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set(api.RunStateHeader, api.RunRunning)
			_, _ = io.WriteString(w, "first\n")
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
			_, _ = io.WriteString(w, "second\n")
		})
		c := &api.Client{Socket: socket}
		body, state, err := c.RunLogs(t.Context(), "12", 5, true)
		require.NoError(t, err)
		defer body.Close()
		require.Equal(t, api.RunRunning, state)
		require.Equal(t, req{"/api/v1/runs/12/logs", "follow=true&offset=5", "text/plain"}, <-seen)

		// The server is still holding the rest back.
		require.Equal(t, "first\n", readFullOrFail(t, body, len("first\n")))
		close(release)
		rest, err := io.ReadAll(body)
		require.NoError(t, err, "a stream the server ended is a clean EOF")
		require.Equal(t, "second\n", string(rest))
	})

	t.Run("NoFollow", func(t *testing.T) {
		t.Parallel()
		queries := make(chan string, 1)
		socket := serveUnixHandler(t, func(w http.ResponseWriter, r *http.Request) {
			queries <- r.URL.RawQuery
			w.Header().Set(api.RunStateHeader, api.RunSucceeded)
			_, _ = io.WriteString(w, "all\n[jobd: output truncated]\n")
		})
		body, state, err := (&api.Client{Socket: socket}).RunLogs(t.Context(), "12", 0, false)
		require.NoError(t, err)
		b, err := io.ReadAll(body)
		require.NoError(t, err)
		require.NoError(t, body.Close())
		require.Equal(t, "all\n[jobd: output truncated]\n", string(b))
		require.Equal(t, api.RunSucceeded, state)
		require.Equal(t, "follow=false&offset=0", <-queries)
	})

	t.Run("DroppedConnectionIsNotEOF", func(t *testing.T) {
		t.Parallel()
		socket := serveUnixHandler(t, func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // the connection drops mid-stream
		})
		body, _, err := (&api.Client{Socket: socket}).RunLogs(t.Context(), "12", 0, true)
		require.NoError(t, err)
		defer body.Close()
		b, err := io.ReadAll(body)
		require.Equal(t, "partial", string(b))
		require.Error(t, err, "a drop must be told apart from the end of the output")
	})

	t.Run("CancelEndsTheStream", func(t *testing.T) {
		t.Parallel()
		socket := serveUnixHandler(t, func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "x")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		})
		ctx, cancel := context.WithCancel(t.Context())
		body, _, err := (&api.Client{Socket: socket}).RunLogs(ctx, "12", 0, true)
		require.NoError(t, err)
		defer body.Close()
		require.Equal(t, "x", readFullOrFail(t, body, 1))
		cancel()
		_, err = io.ReadAll(body)
		require.ErrorIs(t, err, context.Canceled)
	})

	t.Run("Errors", func(t *testing.T) {
		t.Parallel()
		socket, _ := serveUnix(t, 404, `{"error":"run 99 not found"}`)
		body, _, err := (&api.Client{Socket: socket}).RunLogs(t.Context(), "99", 0, true)
		require.Nil(t, body)
		require.True(t, api.IsNotFound(err), "%v", err)
		require.EqualError(t, err, "run 99 not found")

		_, _, err = (&api.Client{Socket: filepath.Join(t.TempDir(), "none")}).RunLogs(t.Context(), "1", 0, true)
		require.True(t, api.IsUnreachable(err), "%v", err)
	})
}

func TestClient_RunKillConflict(t *testing.T) {
	t.Parallel()
	socket, _ := serveUnix(t, 409, `{"error":"run 12 already ended (succeeded)"}`)
	_, err := (&api.Client{Socket: socket}).RunKill(t.Context(), "12")
	require.True(t, api.IsConflict(err), "%v", err)
	require.EqualError(t, err, "run 12 already ended (succeeded)")
}

func TestClient_JobScriptNotFound(t *testing.T) {
	t.Parallel()
	socket, _ := serveUnix(t, 404, `{"error":"job \"a\" has no script version 7"}`)
	src, err := (&api.Client{Socket: socket}).JobScript(t.Context(), "a", 7)
	require.Empty(t, src)
	require.True(t, api.IsNotFound(err), "%v", err)
	var ae *api.Error
	require.True(t, errors.As(err, &ae))
}
