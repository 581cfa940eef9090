package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jobd/jobd/api"
)

// jobdProc is one `jobd serve` on a state dir of its own. start may be
// called again after stop: the restarted jobd keeps the state dir, socket
// and TCP address, as under a service manager.
type jobdProc struct {
	bin     string
	dir     string // state dir: jobd.db, jobd.log, the executors' logs
	sockDir string
	socket  string
	addr    string // executor listener, 127.0.0.1:PORT
	keep    bool
	client  *api.Client

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
	// execAt is when the current process was started.
	execAt time.Time
}

// newJobd makes the state dir and picks a port for a jobd not started yet.
func newJobd(o *options, name string) (*jobdProc, error) {
	dir, err := os.MkdirTemp("", "jobd-bench-"+name+"-")
	if err != nil {
		return nil, fmt.Errorf("make state dir: %w", err)
	}
	// Unix socket paths are limited to about 108 bytes: keep it short.
	sockDir, err := os.MkdirTemp("", "jb")
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("make socket dir: %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		os.RemoveAll(dir)
		os.RemoveAll(sockDir)
		return nil, err
	}
	sock := filepath.Join(sockDir, "s")
	if o.keep {
		o.logf("%s: state dir %s", name, dir)
	}
	return &jobdProc{bin: o.jobd, dir: dir, sockDir: sockDir, socket: sock, addr: addr, keep: o.keep,
		client: &api.Client{Socket: sock}}, nil
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("pick a port: %w", err)
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

func (p *jobdProc) dbPath() string  { return filepath.Join(p.dir, "jobd.db") }
func (p *jobdProc) logPath() string { return filepath.Join(p.dir, "jobd.log") }
func (p *jobdProc) url() string     { return "http://" + p.addr }

// start executes jobd and waits until /readyz answers OK; it returns the
// time from the exec to that answer.
func (p *jobdProc) start(ctx context.Context) (time.Duration, error) {
	if p.running() {
		return 0, errors.New("jobd is already running")
	}
	logf, err := os.OpenFile(p.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("open jobd log: %w", err)
	}
	cmd := exec.Command(p.bin, "serve", "--state-dir", p.dir, "--socket", p.socket, "--listen", p.addr, "--log-level", "warn")
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr()
	p.execAt = time.Now()
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return 0, fmt.Errorf("start jobd: %w", err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(p.done)

	hc := &http.Client{Timeout: time.Second}
	deadline := p.execAt.Add(2 * time.Minute)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url()+"/readyz", nil)
		if err != nil {
			p.kill()
			return 0, fmt.Errorf("readyz request: %w", err)
		}
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(p.execAt), nil
			}
		}
		select {
		case <-p.done:
			return 0, fmt.Errorf("jobd exited at start (%s): %s", p.cmd.ProcessState, tail(p.logPath()))
		case <-ctx.Done():
			p.kill()
			return 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.kill()
			return 0, fmt.Errorf("jobd not ready within 2m: %s", tail(p.logPath()))
		}
	}
}

func (p *jobdProc) running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *jobdProc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and waits for jobd to exit; it kills it after 30s.
func (p *jobdProc) stop() error {
	if !p.running() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if !p.cmd.ProcessState.Success() {
			return fmt.Errorf("jobd exited with %s after SIGTERM: %s", p.cmd.ProcessState, tail(p.logPath()))
		}
		return nil
	case <-time.After(30 * time.Second):
		p.kill()
		return errors.New("jobd did not stop within 30s of SIGTERM")
	}
}

// kill ends jobd with SIGKILL, if it runs, and waits for it.
func (p *jobdProc) kill() {
	if p.running() {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// cleanup kills jobd if it still runs and removes its dirs unless -keep.
func (p *jobdProc) cleanup() {
	p.kill()
	os.RemoveAll(p.sockDir)
	if !p.keep {
		os.RemoveAll(p.dir)
	}
}

// storeSizeMB is the size of the database with its WAL.
func (p *jobdProc) storeSizeMB() float64 {
	var n int64
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(p.dbPath() + suffix); err == nil {
			n += fi.Size()
		}
	}
	return float64(n) / (1 << 20)
}

// waitOnline waits until n executors of group bench are online.
func (p *jobdProc) waitOnline(ctx context.Context, n int) error {
	return p.waitExecutors(ctx, fmt.Sprintf("%d executors online", n), func(x api.Executor) bool { return true }, n)
}

// waitNamed waits until the executor called name is online.
func (p *jobdProc) waitNamed(ctx context.Context, name string) error {
	return p.waitExecutors(ctx, "executor "+name+" online", func(x api.Executor) bool { return x.Name == name }, 1)
}

// waitExecutors waits until n online executors of group bench match.
func (p *jobdProc) waitExecutors(ctx context.Context, what string, match func(api.Executor) bool, n int) error {
	const timeout = 30 * time.Second
	deadline := time.Now().Add(timeout)
	for {
		xs, err := p.client.ExecutorList(ctx)
		found := 0
		for _, x := range xs {
			if x.Group == benchGroup && x.State == api.ExecutorOnline && match(x) {
				found++
			}
		}
		if found >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not %s within %s (last error: %v)", what, timeout, err)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// executorID returns the id jobd gave the executor called name.
func (p *jobdProc) executorID(ctx context.Context, name string) (string, error) {
	xs, err := p.client.ExecutorList(ctx)
	if err != nil {
		return "", fmt.Errorf("list executors: %w", err)
	}
	for _, x := range xs {
		if x.Group == benchGroup && x.Name == name {
			return x.ID, nil
		}
	}
	return "", fmt.Errorf("executor %s is not registered", name)
}

// applyJobs creates specs through the API, 1000 per request.
func (p *jobdProc) applyJobs(ctx context.Context, specs []api.JobSpec) error {
	for i := 0; i < len(specs); i += 1000 {
		if _, err := p.client.Apply(ctx, api.ApplyRequest{Jobs: specs[i:min(i+1000, len(specs))]}); err != nil {
			return fmt.Errorf("create jobs: %w", err)
		}
	}
	return nil
}

// procSample is what /proc says about a process.
type procSample struct {
	cpu    time.Duration // user + system time
	rssMB  float64       // VmRSS
	peakMB float64       // VmHWM
}

// sampleProc reads the CPU time and memory of pid from /proc.
func sampleProc(pid int) (procSample, error) {
	var s procSample
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("read process stats: %w", err)
	}
	// The command name may hold spaces; the fields after it do not.
	str := string(b)
	i := strings.LastIndexByte(str, ')')
	if i < 0 {
		return s, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(str[i+1:])
	if len(f) < 13 {
		return s, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	// utime and stime are fields 14 and 15 of stat(5), in clock ticks
	// (USER_HZ, 100 on Linux).
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return s, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	s.cpu = time.Duration(ut+st) * 10 * time.Millisecond
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("read process status: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) == 0 {
			continue
		}
		kb, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return s, fmt.Errorf("parse /proc/%d/status %s: %w", pid, key, err)
		}
		if key == "VmRSS" {
			s.rssMB = kb / 1024
		} else {
			s.peakMB = kb / 1024
		}
	}
	return s, nil
}

// cleanEnv is the environment of the processes the harness starts: its
// own, without the JOBD_* and JOBCTL_* variables that would change how they
// behave, and without colour.
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

// childAttr puts a child in a process group of its own (a Ctrl-C reaches
// only the harness, which stops it) and kills it if the harness dies.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// tail returns the end of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	const n = 2000
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return fmt.Sprintf("%s:\n%s", path, b)
}

// sleepCtx sleeps for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// sleepUntil sleeps until the wall clock reaches at or ctx is done.
func sleepUntil(ctx context.Context, at time.Time) error {
	return sleepCtx(ctx, time.Until(at))
}
