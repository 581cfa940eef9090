package e2e

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest/v2"
	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/tui"
)

// screen wraps the dashboard to keep what it drew last, as plain text. It
// is an io.Reader for teatest.WaitFor: each read gives the frames drawn
// since the last one, each ended by frameEnd.
type screen struct {
	tea.Model
	mu      sync.Mutex
	frame   string
	frames  int
	read    int
	pending []byte
}

const frameEnd = '\x00'

func (s *screen) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	m, cmd := s.Model.Update(msg)
	s.Model = m
	return s, cmd
}

func (s *screen) View() tea.View {
	v := s.Model.View()
	text := ansi.Strip(v.Content)
	s.mu.Lock()
	if text != s.frame {
		s.frame = text
		s.frames++
	}
	s.mu.Unlock()
	return v
}

func (s *screen) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 && s.read < s.frames {
		s.pending = append([]byte(s.frame), frameEnd)
		s.read = s.frames
	}
	if len(s.pending) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

// lastFrame is the last whole frame in what WaitFor read.
func lastFrame(b []byte) string {
	frames := bytes.Split(b, []byte{frameEnd})
	if len(frames) < 2 {
		return ""
	}
	return string(frames[len(frames)-2])
}

// TestTUI_Smoke drives the dashboard, connected to a real jobd with a real
// executor and job, through each view, one action, and a restart of jobd.
func TestTUI_Smoke(t *testing.T) {
	t.Parallel()
	d := startJobd(t, jobdOpts{})
	startExecutor(t, d, "tui", "tui-1", 2)
	d.ctl("job", "create", "hello", "--group", "tui", "--every", "1s",
		"--command", `sh -c 'echo hello from the dashboard test'`)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := &screen{Model: tui.New(tui.Options{Client: &api.Client{Socket: d.Socket}, Target: d.Socket, Context: ctx})}
	tm := teatest.NewTestModel(t, s, teatest.WithInitialTermSize(120, 30))

	// waitFrame waits until the screen is one ok accepts.
	waitFrame := func(ok func(frame string) bool) {
		t.Helper()
		teatest.WaitFor(t, s, func(b []byte) bool { return ok(lastFrame(b)) },
			teatest.WithDuration(30*time.Second), teatest.WithCheckInterval(20*time.Millisecond))
	}
	// waitScreen waits until the screen shows every one of subs.
	waitScreen := func(subs ...string) {
		t.Helper()
		waitFrame(func(f string) bool {
			for _, sub := range subs {
				if !strings.Contains(f, sub) {
					return false
				}
			}
			return true
		})
	}
	enter := func() { tm.Send(tea.KeyPressMsg{Code: tea.KeyEnter}) }
	// command switches to view name, with the filter of the rest of args.
	command := func(name string, args ...string) {
		tm.Type(":" + strings.Join(append([]string{name}, args...), " "))
		enter()
		waitScreen("<" + name + ">")
	}

	waitScreen("● live", "<overview>", "jobd dev", "executors  1 online", "Next triggers")

	command("executors")
	waitScreen("tui-1", "online", "/2")

	command("jobs")
	waitScreen("hello", "every 1s", "succeeded")

	command("runs")
	waitScreen("hello", "succeeded", "tui-1", "· live")

	// The newest run may not have run yet: open one that succeeded.
	command("runs", "hello", "succeeded")
	waitFrame(func(f string) bool {
		// The filtered runs are loaded: only those that succeeded are left.
		if !strings.Contains(f, `filter "job=hello state=succeeded"`) || !strings.Contains(f, "▸  ") {
			return false
		}
		for _, state := range api.RunStates {
			if state != api.RunSucceeded && strings.Contains(f, " "+state+" ") {
				return false
			}
		}
		return true
	})
	enter() // the newest run that succeeded → its logs
	waitScreen("<logs>", "job hello · succeeded", "hello from the dashboard test", "— end of output —")
	tm.Send(tea.KeyPressMsg{Code: tea.KeyEscape})
	waitScreen("<runs>")

	// Pause the job, with a confirmation, and check jobd has it paused.
	command("jobs")
	tm.Type("p")
	waitScreen("Pause 1 job", "Pause job hello?", "[y/N]")
	tm.Type("y")
	waitScreen("paused job hello", "yes")
	var job api.Job
	d.ctlJSON(&job, "job", "get", "hello")
	require.True(t, job.Paused)

	// jobd goes away and comes back: the dashboard says so, reconnects,
	// and shows what changed since: a job created after the restart.
	d.Stop()
	waitScreen("jobd unreachable — reconnecting…")
	d.Start()
	client := &api.Client{Socket: d.Socket}
	_, err := client.JobCreate(ctx, api.JobSpec{Name: "after-restart", Group: "tui", Manual: true,
		Command: []string{"true"}})
	require.NoError(t, err)
	waitScreen("● live", "<jobs>", "after-restart", "hello")
	require.NotContains(t, lastScreen(s), "reconnecting")

	tm.Type("q")
	tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
}

func lastScreen(s *screen) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frame
}

// TestTUI_Binary drives the built jobctl in a terminal (tmux): with no
// arguments on a terminal it opens the dashboard, and q quits it.
func TestTUI_Binary(t *testing.T) {
	t.Parallel()
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux is not installed: the dashboard binary is not driven in a terminal (TestTUI_Smoke covers the dashboard)")
	}
	d := startJobd(t, jobdOpts{})
	dir, err := os.MkdirTemp("", "jdt")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "tmux")
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(tmux, append([]string{"-S", sock}, args...)...)
		cmd.Env = cleanEnv("TERM=xterm-256color")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "tmux %s: %s", strings.Join(args, " "), out)
		return string(out)
	}
	done := filepath.Join(dir, "done")
	run("new-session", "-d", "-x", "100", "-y", "30", "-s", "tui",
		"sh", "-c", jobctlBin+" --socket "+d.Socket+"; echo $? > "+done+"; sleep 60")
	t.Cleanup(func() { _ = exec.Command(tmux, "-S", sock, "kill-server").Run() })

	capture := func() string { return run("capture-pane", "-p", "-t", "tui") }
	eventually(t, 20*time.Second, func() bool {
		c := capture()
		return strings.Contains(c, "● live") && strings.Contains(c, "<overview>")
	}, "the dashboard opens:\n%s", capture())
	run("send-keys", "-t", "tui", "Tab")
	eventually(t, 10*time.Second, func() bool { return strings.Contains(capture(), "<executors>") },
		"tab shows the executors:\n%s", capture())
	run("send-keys", "-t", "tui", "q")
	eventually(t, 10*time.Second, func() bool {
		b, err := os.ReadFile(done)
		return err == nil && strings.TrimSpace(string(b)) == "0"
	}, "jobctl exits 0 on q")
}
