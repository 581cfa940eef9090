package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/internal/testutil"
)

func TestServer_ExecutorTokens(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.ExecutorTokens = map[string]Secret{"billing": "bill-token", AnyGroup: "any-token"}
	cfg.AdminToken = "admin-token"
	var logs bytes.Buffer
	d := New(cfg, testutil.NewStore(t), slogTo(&logs), SystemClock{}, "test", nil)
	tcp := httptest.NewServer(d.server.ExecutorHandler())
	defer tcp.Close()

	post := func(path, token string, body any) (int, string) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, tcp.URL+api.Prefix+path, bytes.NewReader(b))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	reg := func(group string) api.RegisterRequest {
		return api.RegisterRequest{Group: group, Name: "e1", Slots: 1}
	}
	code, body := post("/executor/register", "", reg("billing"))
	require.Equal(t, http.StatusUnauthorized, code)
	require.Contains(t, body, "needs a token")
	code, body = post("/executor/register", "any-token", reg("billing"))
	require.Equal(t, http.StatusUnauthorized, code, "a group with its own token does not take the '*' one")
	require.NotContains(t, body, "bill-token")
	code, _ = post("/executor/register", "bill-token", reg("billing"))
	require.Equal(t, http.StatusOK, code)
	code, _ = post("/executor/register", "any-token", reg("other"))
	require.Equal(t, http.StatusOK, code)

	// Polls are checked against the executor's group.
	id, ok := "", false
	for _, x := range mustExecutors(t, d) {
		if x.Group == "billing" {
			id, ok = x.ID, true
		}
	}
	require.True(t, ok)
	code, _ = post("/executor/"+id+"/poll", "any-token", api.PollRequest{})
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = post("/executor/"+id+"/poll", "bill-token", api.PollRequest{})
	require.Equal(t, http.StatusOK, code)

	// The admin API over TCP needs the admin token.
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, tcp.URL+api.Prefix+"/status", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	req.Header.Set("Authorization", "Bearer admin-token")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	for _, secret := range []string{"bill-token", "any-token", "admin-token"} {
		require.NotContains(t, logs.String(), secret, "tokens never reach the logs")
	}
	require.NotContains(t, strings.Join([]string{Secret("x").String()}, ""), "x")
}

func mustExecutors(t *testing.T, d *Daemon) []api.Executor {
	t.Helper()
	xs, err := d.disp.Executors(context.Background())
	require.NoError(t, err)
	return xs
}

func TestConfig_NonLoopbackListenNeedsTokens(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Socket = "/tmp/x.sock"
	cfg.Listen = "0.0.0.0:7070"
	require.ErrorContains(t, cfg.Validate(), "executor_tokens")
	cfg.ExecutorTokens = map[string]Secret{"*": "t"}
	require.NoError(t, cfg.Validate())
	cfg.Listen = "127.0.0.1:7070"
	cfg.ExecutorTokens = nil
	require.NoError(t, cfg.Validate())
}

func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
