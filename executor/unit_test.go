package executor

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

func TestConfig_Validate(t *testing.T) {
	t.Parallel()
	valid := func() Config { return Config{Servers: []string{"http://127.0.0.1:7070"}, Group: "g"} }
	tests := []struct {
		name   string
		modify func(*Config)
		fields []string
	}{
		{"Valid", func(*Config) {}, nil},
		{"NoServers", func(c *Config) { c.Servers = nil }, []string{"servers"}},
		{"BadScheme", func(c *Config) { c.Servers = []string{"ftp://x"} }, []string{"servers[0]"}},
		{"NoHost", func(c *Config) { c.Servers = append(c.Servers, "http://") }, []string{"servers[1]"}},
		{"NoGroup", func(c *Config) { c.Group = " " }, []string{"group"}},
		{"NegativeSlots", func(c *Config) { c.Slots = -1 }, []string{"slots"}},
		{"NegativeDurations", func(c *Config) {
			c.PollWait, c.KillGrace, c.ShutdownGrace = -1, -1, -1
		}, []string{"kill_grace", "poll_wait", "shutdown_grace"}},
		{"EmptyLabel", func(c *Config) { c.Labels = map[string]string{"": "x"} }, []string{"labels"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := valid()
			tt.modify(&c)
			err := c.Validate()
			if tt.fields == nil {
				require.NoError(t, err)
				return
			}
			var fields []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var ce *ConfigError
				require.ErrorAs(t, e, &ce)
				fields = append(fields, ce.Field)
			}
			require.Equal(t, tt.fields, fields)
		})
	}
}

func TestNew_Defaults(t *testing.T) {
	t.Parallel()
	a, err := New(Config{Servers: []string{"http://127.0.0.1:1"}, Group: "g"})
	require.NoError(t, err)
	require.Equal(t, DefaultSlots, a.cfg.Slots)
	require.Equal(t, DefaultPollWait, a.cfg.PollWait)
	require.Equal(t, DefaultKillGrace, a.cfg.KillGrace)
	require.Equal(t, DefaultShutdownGrace, a.cfg.ShutdownGrace)
	require.NotEmpty(t, a.cfg.Name)

	_, err = New(Config{})
	require.ErrorContains(t, err, "servers: at least one jobd URL is required")
}

func TestRunEnv(t *testing.T) {
	t.Parallel()
	base := []string{"PATH=/bin", "JOBD_TOKEN=secret", "JOBD_RUN_ID=stale", "HOME=/root"}
	asg := &api.Assignment{RunID: "r1", Job: "j", Attempt: 2, Params: map[string]string{
		"b-name": "2", "a.name": "1", "Mixed_Case9": "3",
	}}
	require.Equal(t, []string{
		"PATH=/bin", "HOME=/root",
		"JOBD_RUN_ID=r1", "JOBD_JOB=j", "JOBD_ATTEMPT=2", "JOBD_SCHEDULED_AT=",
		"JOBD_TRIGGER_ID=", "JOBD_SHARD_INDEX=0", "JOBD_SHARD_TOTAL=0",
		"JOBD_PARAM_MIXED_CASE9=3", "JOBD_PARAM_A_NAME=1", "JOBD_PARAM_B_NAME=2",
	}, runEnv(base, asg))
}

func TestUTF8Cut(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		n    int
		want int
	}{
		{"abcdef", 4, 4},
		{"abc", 10, 3},
		{"aé", 2, 1},  // é is 2 bytes: do not split it
		{"aé", 3, 3},  // whole
		{"a€b", 3, 1}, // € is 3 bytes
		{"a€b", 4, 4},
		{"a😀", 4, 1}, // 4-byte rune
		{"a😀", 5, 5},
		{"\xff\xff\xff\xff\xff", 3, 3}, // not UTF-8: cut anyway
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, utf8Cut([]byte(tt.in), tt.n), "%q at %d", tt.in, tt.n)
	}
}

// recordingReporter acknowledges every report and records it.
type recordingReporter struct {
	mu   sync.Mutex
	reps []api.Report
	sent chan struct{}
}

func (r *recordingReporter) Send(_ context.Context, _ string, rep api.Report) error {
	r.mu.Lock()
	r.reps = append(r.reps, rep)
	r.mu.Unlock()
	r.sent <- struct{}{}
	return nil
}

func TestLogWriter(t *testing.T) {
	t.Parallel()
	rec := &recordingReporter{sent: make(chan struct{}, 100)}
	q := newRunReports(context.Background(), rec, testLogger(t), "r1", 1)
	go q.loop()
	w := newLogWriter(q)

	// A small write is flushed on its own after a while.
	_, err := w.Write([]byte("small"))
	require.NoError(t, err)
	select {
	case <-rec.sent:
	case <-time.After(waitTimeout):
		t.Fatal("small write never flushed")
	}

	// A big write is cut into batches of at most logBatchMax bytes, each
	// valid UTF-8.
	big := strings.Repeat("é", logBatchMax) // 2 bytes each
	_, err = w.Write([]byte(big))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	_, err = w.Write([]byte("late"))
	require.ErrorIs(t, err, errLogClosed)
	q.close()
	<-q.done

	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Equal(t, "small", rec.reps[0].Log)
	var all strings.Builder
	for i, rep := range rec.reps {
		require.Equal(t, int64(i+1), rep.Seq)
		require.Equal(t, api.ReportLog, rep.Type)
		require.LessOrEqual(t, len(rep.Log), logBatchMax)
		require.True(t, utf8.ValidString(rep.Log), "batch %d", i)
		if i > 0 {
			all.WriteString(rep.Log)
		}
	}
	require.Equal(t, big, all.String())
	require.GreaterOrEqual(t, len(rec.reps), 3)
}

func TestTransport_Errors(t *testing.T) {
	t.Parallel()
	notFound := &statusError{Status: 404, Message: "unknown executor"}
	require.True(t, isNotFound(notFound))
	require.False(t, isRetryable(notFound))
	require.True(t, isRetryable(&statusError{Status: 503}))
	require.True(t, isRetryable(&statusError{Status: 429}))
	require.True(t, isRetryable(errors.New("connection refused")))
	require.True(t, failsOver(&statusError{Status: 502}))
	require.False(t, failsOver(&statusError{Status: 500}))
	require.Equal(t, "jobd answered 404: unknown executor", notFound.Error())
	require.Equal(t, "jobd answered 503 Service Unavailable", (&statusError{Status: 503}).Error())
	require.Equal(t, "name: taken", errorMessage([]byte(`{"error":"taken","field":"name"}`)))
	require.Equal(t, "plain text", errorMessage([]byte("plain text\n")))

	bo := newBackoff()
	for range 20 {
		d := bo.delay()
		require.Positive(t, d)
		require.LessOrEqual(t, d, 2*time.Second)
	}
}
