package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/store/sqlite"
)

// Paths of the binaries TestMain builds.
var (
	jobdBin   string
	jobctlBin string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "jobd-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	jobdBin = filepath.Join(dir, "jobd")
	jobctlBin = filepath.Join(dir, "jobctl")
	for bin, pkg := range map[string]string{
		jobdBin:   "github.com/jobd/jobd/cmd/jobd",
		jobctlBin: "github.com/jobd/jobd/cmd/jobctl",
	} {
		// The binaries are built without -race even when the tests run with
		// it: they are what operators run, and the race build of jobd is
		// several times slower.
		cmd := exec.Command(goTool(), "build", "-o", bin, pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: build %s: %v\n", pkg, err)
			return 1
		}
	}
	return m.Run()
}

// goTool returns the go command: the one on PATH (go test puts
// $GOROOT/bin first), else $GOROOT/bin/go.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}

// cleanEnv is the environment of the processes tests start: the test's
// own, without the JOBD_* and JOBCTL_* variables that would change how
// they behave, and without colour.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "JOBD_") || strings.HasPrefix(kv, "JOBCTL_") || strings.HasPrefix(kv, "NO_COLOR=") {
			continue
		}
		env = append(env, kv)
	}
	return append(append(env, "NO_COLOR=1"), extra...)
}

// proc is one started process whose stderr (and stdout) go to a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	// state is set once done is closed.
	state *os.ProcessState
}

func startProc(t *testing.T, name, logPath string, env []string, bin string, args ...string) *proc {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	// A process group of its own, so a Ctrl-C of go test does not reach it
	// before the cleanup does, and kill9 can take its children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	logf.Close()
	require.NoError(t, err, "start %s", name)
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		close(p.done)
	}()
	return p
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to timeout for the process to end and returns its exit
// code (-1 when killed by a signal); ok is false on timeout.
func (p *proc) wait(timeout time.Duration) (code int, ok bool) {
	select {
	case <-p.done:
		return p.state.ExitCode(), true
	case <-time.After(timeout):
		return 0, false
	}
}

func (p *proc) signal(sig syscall.Signal) {
	if !p.exited() {
		_ = p.cmd.Process.Signal(sig)
	}
}

// kill9 kills the process with SIGKILL, as a crash would, and waits for it.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	p.signal(syscall.SIGKILL)
	_, ok := p.wait(10 * time.Second)
	require.True(t, ok, "%s did not die on SIGKILL", p.name)
}

// stop sends SIGTERM and waits up to timeout; it reports the exit code, or
// kills the process and fails the test if it does not stop in time.
func (p *proc) stop(t *testing.T, timeout time.Duration) int {
	t.Helper()
	p.signal(syscall.SIGTERM)
	code, ok := p.wait(timeout)
	if !ok {
		p.signal(syscall.SIGKILL)
		<-p.done
		t.Errorf("%s did not exit within %s of SIGTERM", p.name, timeout)
		return -1
	}
	return code
}

// dumpLog t.Logs the tail of a log file.
func dumpLog(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Logf("--- %s: %v", path, err)
		return
	}
	const tail = 48 << 10
	if len(b) > tail {
		b = append([]byte("[...]\n"), b[len(b)-tail:]...)
	}
	t.Logf("--- %s ---\n%s--- end of %s ---", filepath.Base(path), b, filepath.Base(path))
}

// jobdOpts configures startJobd.
type jobdOpts struct {
	// Config is the content of a YAML --config file, if not empty.
	Config string
}

// Jobd is one jobd serve under test. Start after Stop or Kill9 keeps its
// state dir, socket and listen address, like a service manager restarting
// the unit.
type Jobd struct {
	t        *testing.T
	StateDir string
	Socket   string
	// Addr is the executor listener, 127.0.0.1:PORT.
	Addr   string
	opts   jobdOpts
	logDir string
	proc   *proc
	starts int
}

// startJobd starts jobd serve on a fresh state dir, socket and port and
// waits until `jobctl status` answers. The cleanup stops it with SIGTERM
// and checks it exits 0; on failure it logs jobd's stderr.
func startJobd(t *testing.T, opts jobdOpts) *Jobd {
	t.Helper()
	// Unix socket paths are limited to ~108 bytes: t.TempDir() is too long.
	sockDir, err := os.MkdirTemp("", "jd")
	require.NoError(t, err)
	d := &Jobd{t: t, StateDir: t.TempDir(), Socket: filepath.Join(sockDir, "s"), opts: opts, logDir: t.TempDir()}
	t.Cleanup(func() {
		if d.proc != nil && !d.proc.exited() {
			if code := d.proc.stop(t, 20*time.Second); code != 0 {
				t.Errorf("jobd exited %d on SIGTERM at cleanup, want 0", code)
			}
		}
		if t.Failed() {
			for i := 1; i <= d.starts; i++ {
				dumpLog(t, d.logPath(i))
			}
		}
		os.RemoveAll(sockDir)
	})
	d.Start()
	return d
}

func (d *Jobd) logPath(n int) string { return filepath.Join(d.logDir, fmt.Sprintf("jobd-%d.log", n)) }

// URL is the base URL executors are given.
func (d *Jobd) URL() string { return "http://" + d.Addr }

// DBPath is the SQLite file of the store.
func (d *Jobd) DBPath() string { return filepath.Join(d.StateDir, "jobd.db") }

// Running reports whether the jobd process is alive.
func (d *Jobd) Running() bool { return d.proc != nil && !d.proc.exited() }

// Start starts jobd (again) and waits until it answers. The first start
// picks a free port, retrying with another one if jobd cannot bind it;
// later starts keep the address, retrying a few times if it is busy.
func (d *Jobd) Start() {
	t := d.t
	t.Helper()
	require.False(t, d.Running(), "jobd is already running")
	first := d.Addr == ""
	var lastErr string
	for attempt := 0; attempt < 6; attempt++ {
		if first {
			d.Addr = freeAddr(t)
		}
		args := []string{"serve", "--state-dir", d.StateDir, "--socket", d.Socket, "--listen", d.Addr, "--log-level", "info"}
		if d.opts.Config != "" {
			cfg := filepath.Join(d.logDir, "jobd.yaml")
			require.NoError(t, os.WriteFile(cfg, []byte(d.opts.Config), 0o644))
			args = append(args, "--config", cfg)
		}
		d.starts++
		d.proc = startProc(t, "jobd", d.logPath(d.starts), cleanEnv(), jobdBin, args...)
		if d.waitReady(20 * time.Second) {
			return
		}
		if !d.proc.exited() {
			d.proc.signal(syscall.SIGKILL)
			<-d.proc.done
			t.Fatalf("jobd did not answer `jobctl status` within 20s")
		}
		b, _ := os.ReadFile(d.logPath(d.starts))
		lastErr = string(b)
		if !strings.Contains(lastErr, "address already in use") {
			t.Fatalf("jobd exited at start with code %d:\n%s", d.proc.state.ExitCode(), lastErr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("jobd could not bind a port after 6 attempts:\n%s", lastErr)
}

// waitReady waits until `jobctl status` answers, or jobd exits.
func (d *Jobd) waitReady(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if d.proc.exited() {
			return false
		}
		if _, _, code := d.jobctl("status"); code == 0 {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// Stop sends SIGTERM and requires a clean exit (0) within 15s.
func (d *Jobd) Stop() {
	d.t.Helper()
	require.True(d.t, d.Running(), "jobd is not running")
	code := d.proc.stop(d.t, 15*time.Second)
	require.Equal(d.t, 0, code, "jobd exit code after SIGTERM")
}

// Kill9 kills jobd with SIGKILL, as a crash would.
func (d *Jobd) Kill9() {
	d.t.Helper()
	d.proc.kill9(d.t)
}

// jobctl runs jobctl against this jobd with stdin not a terminal and
// returns its output and exit code.
func (d *Jobd) jobctl(args ...string) (stdout, stderr string, code int) {
	return runJobctl(d.Socket, args...)
}

func runJobctl(socket string, args ...string) (stdout, stderr string, code int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, jobctlBin, append([]string{"--socket", socket}, args...)...)
	cmd.Env = cleanEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		code = 0
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		code = -1
		errb.WriteString(err.Error())
	}
	return out.String(), errb.String(), code
}

// ctl runs jobctl and requires exit 0; it returns stdout.
func (d *Jobd) ctl(args ...string) string {
	d.t.Helper()
	out, errOut, code := d.jobctl(args...)
	require.Equal(d.t, 0, code, "jobctl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	return out
}

// ctlJSON runs jobctl with -o json, requires exit 0 and decodes stdout
// into v.
func (d *Jobd) ctlJSON(v any, args ...string) {
	d.t.Helper()
	out := d.ctl(append(args, "-o", "json")...)
	require.NoError(d.t, json.Unmarshal([]byte(out), v), "jobctl %s -o json printed:\n%s", strings.Join(args, " "), out)
}

// freeAddr returns a loopback address with a port that was free a moment
// ago. Another process may take it before jobd binds it: Start retries.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// Executor is one `jobd executor` process.
type Executor struct {
	t    *testing.T
	Name string
	// StateDir is its --state-dir.
	StateDir string
	logPath  string
	proc     *proc
}

// execOpts configures startExecutorWith.
type execOpts struct {
	Group, Name string
	// Slots defaults to 1.
	Slots int
	// Servers is the --server value; d.URL() when empty.
	Servers string
	// Labels are --label K=V flags.
	Labels []string
	// Args are more flags.
	Args []string
	// Env is added to the environment.
	Env []string
	// StateDir defaults to a fresh temp dir.
	StateDir string
	// NoWait returns at once instead of waiting until jobd lists the
	// executor online.
	NoWait bool
	// AnyExit makes the cleanup accept any exit code (an executor expected
	// to fail).
	AnyExit bool
}

// startExecutor starts `jobd executor` against server and waits until jobd
// lists it online (when d is given). The cleanup stops it with SIGTERM.
func startExecutor(t *testing.T, d *Jobd, group, name string, slots int) *Executor {
	t.Helper()
	return startExecutorWith(t, d, execOpts{Group: group, Name: name, Slots: slots})
}

// startExecutorWith starts `jobd executor` as o says and, unless o.NoWait,
// waits until jobd lists it online. The cleanup stops it with SIGTERM and
// requires exit 0 (unless o.AnyExit); on failure it logs its output.
func startExecutorWith(t *testing.T, d *Jobd, o execOpts) *Executor {
	t.Helper()
	if o.Slots == 0 {
		o.Slots = 1
	}
	if o.Servers == "" {
		o.Servers = d.URL()
	}
	if o.StateDir == "" {
		o.StateDir = t.TempDir()
	}
	logPath := filepath.Join(t.TempDir(), "executor-"+o.Name+".log")
	args := []string{"executor", "--server", o.Servers, "--group", o.Group, "--name", o.Name,
		"--slots", strconv.Itoa(o.Slots), "--state-dir", o.StateDir, "--log-level", "debug"}
	for _, l := range o.Labels {
		args = append(args, "--label", l)
	}
	args = append(args, o.Args...)
	p := startProc(t, "executor "+o.Name, logPath, cleanEnv(o.Env...), jobdBin, args...)
	e := &Executor{t: t, Name: o.Name, StateDir: o.StateDir, logPath: logPath, proc: p}
	t.Cleanup(func() {
		if !p.exited() {
			if code := p.stop(t, 45*time.Second); code != 0 && !o.AnyExit {
				t.Errorf("executor %s exited %d on SIGTERM at cleanup, want 0", o.Name, code)
			}
		}
		if t.Failed() {
			dumpLog(t, logPath)
		}
	})
	if !o.NoWait {
		d.waitExecutorOnline(o.Group, o.Name)
	}
	return e
}

// Pid is the executor's process id.
func (e *Executor) Pid() int { return e.proc.cmd.Process.Pid }

// Log returns what the executor wrote to stdout and stderr so far.
func (e *Executor) Log() string {
	b, _ := os.ReadFile(e.logPath)
	return string(b)
}

// Kill9 kills the executor with SIGKILL, as a crash would, and waits for
// it. The processes of its runs, in process groups of their own, survive.
func (e *Executor) Kill9() {
	e.t.Helper()
	e.proc.kill9(e.t)
}

// Stop stops the executor with SIGTERM (it drains and deregisters) and
// requires exit 0.
func (e *Executor) Stop() {
	e.t.Helper()
	code := e.proc.stop(e.t, 45*time.Second)
	require.Equal(e.t, 0, code, "executor %s exit code after SIGTERM", e.Name)
}

// waitExecutorOnline waits until jobd lists executor name of group online.
func (d *Jobd) waitExecutorOnline(group, name string) {
	d.t.Helper()
	eventually(d.t, 15*time.Second, func() bool {
		out, _, code := d.jobctl("executor", "list", "-o", "json")
		if code != 0 {
			return false
		}
		var xs []struct{ Name, Group, State string }
		if json.Unmarshal([]byte(out), &xs) != nil {
			return false
		}
		for _, x := range xs {
			if x.Name == name && x.Group == group && x.State == "online" {
				return true
			}
		}
		return false
	}, "executor %s/%s online", group, name)
}

// eventually polls cond every 100ms until it holds or timeout passes, then
// fails the test with msg.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: "+msg, append([]any{timeout}, args...)...)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// openStore opens jobd's store. jobd must be stopped: Open migrates, and
// the tests want a settled state.
func openStore(t *testing.T, d *Jobd) *sqlite.Store {
	t.Helper()
	require.False(t, d.Running(), "open the store only once jobd is stopped")
	st, err := sqlite.Open(context.Background(), d.DBPath())
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// waitUntil sleeps until the wall clock reaches at.
func waitUntil(at time.Time) {
	if d := time.Until(at); d > 0 {
		time.Sleep(d)
	}
}
