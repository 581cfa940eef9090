package daemon

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/internal/testutil"
)

func TestServer_RunLogsFollow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := New(DefaultConfig(), testutil.NewStore(t), testutil.Logger(t), SystemClock{}, "test", nil)
	srv := httptest.NewServer(d.server.AdminHandler())
	defer srv.Close()
	reg, err := d.disp.Register(ctx, api.RegisterRequest{Group: "g", Name: "e1", Slots: 2})
	require.NoError(t, err)
	_, err = d.sched.CreateJob(ctx, api.JobSpec{Name: "talk", Group: "g", Manual: true, Command: []string{"x"}})
	require.NoError(t, err)
	res, _, err := d.sched.TriggerNow(ctx, "talk", nil)
	require.NoError(t, err)
	id := strconv.FormatInt(res.Runs[0].ID, 10)
	report := func(seq int64, typ, log, state string) {
		t.Helper()
		_, err := d.Reports(ctx, api.ReportBatch{Reports: []api.RunReport{{RunID: id, Report: api.Report{
			ExecutorID: reg.ID, Attempt: 1, Seq: seq, Type: typ, Log: log, State: state}}}})
		require.NoError(t, err)
	}
	report(1, api.ReportStart, "", "")
	report(2, api.ReportLog, "first\n", "")

	get := func(query string) *http.Response {
		t.Helper()
		resp, err := http.Get(srv.URL + api.Prefix + "/runs/" + id + "/logs" + query)
		require.NoError(t, err)
		return resp
	}
	resp := get("?offset=2")
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, "rst\n", string(b))
	require.Equal(t, api.RunRunning, resp.Header.Get("X-Jobd-Run-State"))

	follow := get("?follow=true")
	defer follow.Body.Close()
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(follow.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() (string, bool) {
		select {
		case l, ok := <-lines:
			return l, ok
		case <-time.After(10 * time.Second):
			t.Fatal("no line from the log stream")
		}
		return "", false
	}
	l, _ := next()
	require.Equal(t, "first", l)
	report(3, api.ReportLog, "second\n", "")
	l, _ = next()
	require.Equal(t, "second", l, "new output streams while the run goes on")
	report(4, api.ReportResult, "", api.RunSucceeded)
	_, open := next()
	require.False(t, open, "the stream ends when the run ends")

	resp = get("")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp.Body.Close()
	resp, err = http.Get(srv.URL + api.Prefix + "/runs/424242/logs")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}
