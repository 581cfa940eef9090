package executor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jobd/jobd/api"
)

// outputDrainTimeout bounds how long the output of a finished process is
// still read: a descendant that left the process group may hold the pipe.
const outputDrainTimeout = 2 * time.Second

// groupPollInterval is how often a stopping process group is checked.
const groupPollInterval = 20 * time.Millisecond

// interpreters maps a script interpreter to the file suffix of its scripts.
var interpreters = map[string]string{
	"sh":      ".sh",
	"bash":    ".sh",
	"python3": ".py",
	"node":    ".js",
}

// runScript writes the script to a file and runs "<interpreter> <file>".
func (a *Agent) runScript(r *run) outcome {
	interp := r.asg.Interpreter
	if interp == "" {
		interp = "sh"
	}
	suffix, ok := interpreters[interp]
	if !ok {
		return failed(fmt.Errorf("interpreter %q is not supported (want bash, sh, python3 or node)", interp))
	}
	dir := os.TempDir()
	if a.cfg.StateDir != "" {
		dir = filepath.Join(a.cfg.StateDir, "scripts")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return failed(fmt.Errorf("script dir: %w", err))
		}
	}
	f, err := os.CreateTemp(dir, "jobd-run-*"+suffix)
	if err != nil {
		return failed(fmt.Errorf("write script: %w", err))
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(r.asg.Script)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return failed(fmt.Errorf("write script: %w", err))
	}
	return a.runProcess(r, []string{interp, f.Name()})
}

// runProcess executes argv without a shell, in a process group of its own,
// with the run's JOBD_* environment and its combined output going to the
// run's log. When the run is stopped the whole group gets SIGTERM, then
// SIGKILL after the kill grace; descendants left behind by a process that
// exited are stopped the same way.
func (a *Agent) runProcess(r *run, argv []string) outcome {
	if len(argv) == 0 || argv[0] == "" {
		return failed(errors.New("command is empty"))
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = runEnv(a.environFunc(), &r.asg)
	// Pdeathsig: if the agent dies (kill -9), the job's process is killed
	// with it, so that jobd's retry of the lost run does not run beside it.
	// (Its own descendants, in the same process group, are not reached.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// One pipe for stdout and stderr, read by us rather than by os/exec, so
	// Wait returns when the process exits even if a descendant holds it.
	pr, pw, err := os.Pipe()
	if err != nil {
		return failed(fmt.Errorf("output pipe: %w", err))
	}
	defer pr.Close()
	cmd.Stdout, cmd.Stderr = pw, pw
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return failed(fmt.Errorf("start: %w", err))
	}
	pgid := cmd.Process.Pid
	a.setGroup(r, pgid)
	defer a.setGroup(r, 0)
	r.reportStart()

	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(r.output, pr)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var waitErr error
	var stop *stopError
	select {
	case waitErr = <-exited:
	case <-r.ctx.Done():
		select {
		case waitErr = <-exited: // it ended on its own just now
		default:
			stop = r.stopped()
			r.log.Info("stopping process group", "pgid", pgid, "reason", stop.reason)
			stopGroup(pgid, a.cfg.KillGrace)
			waitErr = <-exited
		}
	}
	if stop == nil && groupAlive(pgid) {
		r.log.Info("stopping processes left behind by the run", "pgid", pgid)
		stopGroup(pgid, a.cfg.KillGrace)
	}

	select {
	case <-copied:
	case <-time.After(outputDrainTimeout):
		_ = pr.SetReadDeadline(time.Now())
		<-copied
	}

	if stop != nil {
		return stoppedOutcome(stop)
	}
	return exitOutcome(waitErr)
}

// setGroup records the process group of a run (0: none), for killGroups.
func (a *Agent) setGroup(r *run, pgid int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r.pgid = pgid
}

// killGroups sends SIGKILL at once to the process groups of every run: an
// agent stopping hard does not wait out the kill grace of those that
// ignored SIGTERM, since it exits before.
func (a *Agent) killGroups() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.runs {
		if r.pgid > 0 {
			r.log.Warn("stopping hard: killing process group", "pgid", r.pgid)
			_ = syscall.Kill(-r.pgid, syscall.SIGKILL)
		}
	}
}

// exitOutcome maps the result of Wait to an outcome.
func exitOutcome(err error) outcome {
	if err == nil {
		code := 0
		return outcome{state: api.RunSucceeded, exitCode: &code}
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return failed(fmt.Errorf("wait: %w", err))
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return failed(fmt.Errorf("killed by signal %s", ws.Signal()))
	}
	code := ee.ExitCode()
	return outcome{state: api.RunFailed, exitCode: &code, err: fmt.Errorf("exit status %d", code)}
}

// stopGroup sends SIGTERM to a process group, waits up to grace for it to
// be gone, then sends SIGKILL.
func stopGroup(pgid int, grace time.Duration) {
	if err := syscall.Kill(-pgid, syscall.SIGTERM); errors.Is(err, syscall.ESRCH) {
		return
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		time.Sleep(groupPollInterval)
		if !groupAlive(pgid) {
			return
		}
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// groupAlive reports whether a process group has a member that is not a
// zombie. It reads /proc when there is one, because an orphaned zombie is
// only reaped by init and a container's init may never do it; elsewhere a
// zombie counts as alive.
func groupAlive(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return syscall.Kill(-pgid, 0) == nil
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pg, alive, ok := procStat(pid); ok && alive && pg == pgid {
			return true
		}
	}
	return false
}

// procStat reads the process group of pid from /proc and whether it runs
// (is neither a zombie nor dead); ok is false when pid is gone.
func procStat(pid int) (pgid int, alive, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, false
	}
	// "pid (comm) state ppid pgrp ...", where comm may hold spaces and parens.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 {
		return 0, false, false
	}
	pgid, err = strconv.Atoi(f[2])
	if err != nil {
		return 0, false, false
	}
	return pgid, f[0] != "Z" && f[0] != "X", true
}

// runEnv is the environment of a run's process: base without its JOBD_*
// variables (the agent's own settings, such as a token, must not leak into
// jobs), plus the run's JOBD_* variables and one JOBD_PARAM_<NAME> per
// param.
func runEnv(base []string, asg *api.Assignment) []string {
	env := make([]string, 0, len(base)+7+len(asg.Params))
	for _, kv := range base {
		if !strings.HasPrefix(kv, "JOBD_") {
			env = append(env, kv)
		}
	}
	scheduled := ""
	if !asg.ScheduledAt.IsZero() {
		scheduled = asg.ScheduledAt.UTC().Format(api.TimeFormat)
	}
	env = append(env,
		"JOBD_RUN_ID="+asg.RunID,
		"JOBD_JOB="+asg.Job,
		"JOBD_ATTEMPT="+strconv.Itoa(asg.Attempt),
		"JOBD_SCHEDULED_AT="+scheduled,
		"JOBD_TRIGGER_ID="+asg.TriggerID,
		"JOBD_SHARD_INDEX="+strconv.Itoa(asg.ShardIndex),
		"JOBD_SHARD_TOTAL="+strconv.Itoa(asg.ShardTotal),
	)
	names := make([]string, 0, len(asg.Params))
	for name := range asg.Params {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		env = append(env, ParamEnvName(name)+"="+asg.Params[name])
	}
	return env
}

// ParamEnvName returns the environment variable that carries the param
// name to a command or script: JOBD_PARAM_ and the name upper-cased, with
// every character other than A-Z and 0-9 replaced by "_".
func ParamEnvName(name string) string {
	var b strings.Builder
	b.WriteString("JOBD_PARAM_")
	for _, c := range strings.ToUpper(name) {
		if (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
