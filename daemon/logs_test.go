package daemon

import (
	"bufio"
	"context"
	"encoding/json"
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

func TestServer_ScriptVersions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := New(DefaultConfig(), testutil.NewStore(t), testutil.Logger(t), SystemClock{}, "test", nil)
	srv := httptest.NewServer(d.server.AdminHandler())
	defer srv.Close()
	spec := api.JobSpec{Name: "sc", Group: "g", Manual: true, Script: "echo 1", Interpreter: "bash"}
	_, err := d.sched.CreateJob(ctx, spec)
	require.NoError(t, err)
	spec.Script = "echo 2"
	_, _, err = d.sched.UpdateJob(ctx, "sc", spec)
	require.NoError(t, err)
	spec.Interpreter = "sh" // not a source change: no new version
	_, _, err = d.sched.UpdateJob(ctx, "sc", spec)
	require.NoError(t, err)

	var vs []api.ScriptVersion
	resp, err := http.Get(srv.URL + api.Prefix + "/jobs/sc/scripts")
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&vs))
	resp.Body.Close()
	require.Len(t, vs, 2)
	require.Equal(t, 2, vs[0].Version)
	resp, err = http.Get(srv.URL + api.Prefix + "/jobs/sc/scripts/1")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, "echo 1", string(b))
	var j api.Job
	resp, err = http.Get(srv.URL + api.Prefix + "/jobs/sc")
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&j))
	resp.Body.Close()
	require.Equal(t, 2, j.ScriptVersion)
}
