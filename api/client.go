package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RootSocket is the default socket of a jobd running as root.
const RootSocket = "/run/jobd/jobd.sock"

// socketHost is the Host of requests sent over the unix socket. The name
// means nothing to the network; it is what the server sees in Host.
const socketHost = "jobd"

// maxErrorBody caps how much of an error response is read.
const maxErrorBody = 64 << 10

// DefaultSocket returns the socket jobd listens on and jobctl dials when
// neither is told otherwise (SPEC §5), for the current effective user:
//
//   - root (euid 0): /run/jobd/jobd.sock;
//   - others: $XDG_RUNTIME_DIR/jobd.sock;
//   - others without XDG_RUNTIME_DIR (a cron job, a sudo -u shell):
//     $TMPDIR/jobd-<uid>/jobd.sock (os.TempDir). Whoever creates that
//     directory must create it 0700 and check it is owned by the user, since
//     the temp dir is shared.
func DefaultSocket() string {
	return DefaultSocketFor(os.Geteuid(), os.Getenv, os.TempDir())
}

// DefaultSocketFor is DefaultSocket for the given uid, environment lookup
// and temp dir.
func DefaultSocketFor(uid int, getenv func(string) string, tempDir string) string {
	if uid == 0 {
		return RootSocket
	}
	if d := getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "jobd.sock")
	}
	return filepath.Join(tempDir, "jobd-"+strconv.Itoa(uid), "jobd.sock")
}

// Client is a typed client of jobd's HTTP API. The zero Client talks to jobd
// on DefaultSocket(). A Client is safe for concurrent use; its fields must
// not change, and it must not be copied, after the first request.
type Client struct {
	// Socket is the unix socket of jobd, used when Addr is empty. Empty
	// means DefaultSocket().
	Socket string
	// Addr is the base URL of jobd over TCP, "http(s)://host:port"; a bare
	// "host:port" means http.
	Addr string
	// Token, when set, is sent as "Authorization: Bearer <Token>". It is
	// never part of an error message.
	Token string
	// Transport, when set, carries every request instead of the client's
	// own transport (which dials Socket or Addr). Requests go to Addr, or to
	// http://jobd when Addr is empty.
	Transport http.RoundTripper
	// UserAgent is sent as User-Agent; empty means "jobd-api-client".
	UserAgent string

	once    sync.Once
	hc      *http.Client
	base    string // scheme://host[/path], no trailing slash
	initErr error
}

func (c *Client) init() {
	c.once.Do(func() {
		rt := c.Transport
		if c.Addr != "" {
			addr := c.Addr
			if !strings.Contains(addr, "://") {
				addr = "http://" + addr
			}
			u, err := url.Parse(addr)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				c.initErr = fmt.Errorf("jobd address %q: want http(s)://host:port", c.Addr)
				return
			}
			u.Path = strings.TrimSuffix(u.Path, "/")
			u.RawPath, u.RawQuery, u.Fragment = "", "", ""
			c.base = u.String()
			if rt == nil {
				rt = http.DefaultTransport.(*http.Transport).Clone()
			}
		} else {
			c.base = "http://" + socketHost
			if rt == nil {
				socket := c.socket()
				rt = &http.Transport{
					DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
						var d net.Dialer
						return d.DialContext(ctx, "unix", socket)
					},
					MaxIdleConns:          4,
					IdleConnTimeout:       30 * time.Second,
					ExpectContinueTimeout: time.Second,
				}
			}
		}
		c.hc = &http.Client{Transport: rt}
	})
}

func (c *Client) socket() string {
	if c.Socket != "" {
		return c.Socket
	}
	return DefaultSocket()
}

// Target is where the client sends requests: Addr, or else the socket path.
func (c *Client) Target() string {
	if c.Addr != "" {
		return c.Addr
	}
	return c.socket()
}

// CloseIdleConnections closes the idle connections of the client's
// transport.
func (c *Client) CloseIdleConnections() {
	c.init()
	if c.hc != nil {
		c.hc.CloseIdleConnections()
	}
}

// do sends one request to path (below Prefix) with query, in encoded as the
// JSON body when non-nil, and decodes a 2xx JSON answer into out when
// non-nil. A non-2xx answer returns an *Error; a failed dial returns an
// *UnreachableError.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	resp, err := c.send(ctx, method, path, query, in, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// send sends one request like do, asking for an answer of type accept, and
// returns a 2xx answer with its body unread: the caller must close it. Any
// other answer is read into an *Error.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, in any, accept string) (*http.Response, error) {
	c.init()
	if c.initErr != nil {
		return nil, c.initErr
	}
	target := c.base + Prefix + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}

	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", accept)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	ua := c.UserAgent
	if ua == "" {
		ua = "jobd-api-client"
	}
	req.Header.Set("User-Agent", ua)
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}

	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

// transportError turns an error of http.Client.Do into the error do returns.
func (c *Client) transportError(ctx context.Context, method, path string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s %s: %w", method, path, ctxErr)
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return &UnreachableError{Target: c.Target(), Err: opErr.Err}
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	return fmt.Errorf("%s %s: %w", method, path, err)
}

// decodeError reads a non-2xx answer into an *Error.
func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &Error{Status: resp.StatusCode}
	var eb ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
		e.Message, e.Field = eb.Error, eb.Field
		return e
	}
	// Not our JSON (a proxy, a panic page): keep the first line of text.
	text := strings.TrimSpace(string(b))
	if i := strings.IndexByte(text, '\n'); i >= 0 {
		text = text[:i]
	}
	if len(text) > 200 {
		text = text[:200] + "..."
	}
	if text != "" && !strings.HasPrefix(text, "<") {
		e.Message = text
	}
	return e
}

// JobListOptions filters and pages GET /api/v1/jobs.
type JobListOptions struct {
	// Group keeps the jobs of one group.
	Group string
	// After is the paging cursor: only jobs whose name sorts after it.
	After string
	// Limit caps the page size; 0 means the server default.
	Limit int
}

// RunListOptions filters and pages GET /api/v1/runs (newest first).
type RunListOptions struct {
	// Job keeps the runs of one job.
	Job string
	// State keeps the runs in one state.
	State string
	// Executor keeps the runs handed to one executor (its id).
	Executor string
	// Before is the paging cursor: only runs older than this run id.
	Before string
	// Limit caps the page size; 0 means the server default.
	Limit int
}

// MissedListOptions filters GET /api/v1/missed.
type MissedListOptions struct {
	// Job keeps the records of one job.
	Job string
	// Since and Until, when non-zero, keep records overlapping that range.
	Since, Until time.Time
}

func setNonEmpty(q url.Values, key, value string) {
	if value != "" {
		q.Set(key, value)
	}
}

func setPositive(q url.Values, key string, n int) {
	if n > 0 {
		q.Set(key, strconv.Itoa(n))
	}
}

func setTime(q url.Values, key string, t time.Time) {
	if !t.IsZero() {
		q.Set(key, t.UTC().Format(TimeFormat))
	}
}

func jobPath(name string) string { return "/jobs/" + url.PathEscape(name) }

// Status returns the daemon's status (GET /status).
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	if err := c.do(ctx, http.MethodGet, "/status", nil, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// JobList returns one page of jobs ordered by name (GET /jobs). The slice is
// never nil.
func (c *Client) JobList(ctx context.Context, opts JobListOptions) ([]Job, error) {
	q := url.Values{}
	setNonEmpty(q, "group", opts.Group)
	setNonEmpty(q, "after", opts.After)
	setPositive(q, "limit", opts.Limit)
	jobs := []Job{}
	if err := c.do(ctx, http.MethodGet, "/jobs", q, nil, &jobs); err != nil {
		return nil, err
	}
	if jobs == nil {
		jobs = []Job{}
	}
	return jobs, nil
}

// JobCreate creates a job (POST /jobs). A taken name is a conflict
// (IsConflict).
func (c *Client) JobCreate(ctx context.Context, spec JobSpec) (*Job, error) {
	var j Job
	if err := c.do(ctx, http.MethodPost, "/jobs", nil, spec, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// JobGet returns the job called name (GET /jobs/{name}).
func (c *Client) JobGet(ctx context.Context, name string) (*Job, error) {
	var j Job
	if err := c.do(ctx, http.MethodGet, jobPath(name), nil, nil, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// JobPut replaces the spec of the job called name (PUT /jobs/{name}).
func (c *Client) JobPut(ctx context.Context, name string, spec JobSpec) (*Job, error) {
	var j Job
	if err := c.do(ctx, http.MethodPut, jobPath(name), nil, spec, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// JobDelete deletes the job called name (DELETE /jobs/{name}).
func (c *Client) JobDelete(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, jobPath(name), nil, nil, nil)
}

// JobPause pauses the job called name (POST /jobs/{name}/pause).
func (c *Client) JobPause(ctx context.Context, name string) (*Job, error) {
	var j Job
	if err := c.do(ctx, http.MethodPost, jobPath(name)+"/pause", nil, nil, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// JobResume resumes the job called name (POST /jobs/{name}/resume).
func (c *Client) JobResume(ctx context.Context, name string) (*Job, error) {
	var j Job
	if err := c.do(ctx, http.MethodPost, jobPath(name)+"/resume", nil, nil, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// JobTrigger fires the job called name now (POST /jobs/{name}/trigger).
func (c *Client) JobTrigger(ctx context.Context, name string, req TriggerRequest) (*TriggerResponse, error) {
	var tr TriggerResponse
	if err := c.do(ctx, http.MethodPost, jobPath(name)+"/trigger", nil, req, &tr); err != nil {
		return nil, err
	}
	return &tr, nil
}

// Apply makes the stored jobs match req.Jobs (POST /apply).
func (c *Client) Apply(ctx context.Context, req ApplyRequest) (*ApplyResponse, error) {
	var ar ApplyResponse
	if err := c.do(ctx, http.MethodPost, "/apply", nil, req, &ar); err != nil {
		return nil, err
	}
	return &ar, nil
}

// RunList returns one page of runs, newest first (GET /runs). The slice is
// never nil.
func (c *Client) RunList(ctx context.Context, opts RunListOptions) ([]Run, error) {
	q := url.Values{}
	setNonEmpty(q, "job", opts.Job)
	setNonEmpty(q, "state", opts.State)
	setNonEmpty(q, "executor", opts.Executor)
	setNonEmpty(q, "before", opts.Before)
	setPositive(q, "limit", opts.Limit)
	runs := []Run{}
	if err := c.do(ctx, http.MethodGet, "/runs", q, nil, &runs); err != nil {
		return nil, err
	}
	if runs == nil {
		runs = []Run{}
	}
	return runs, nil
}

// RunGet returns the run with id (GET /runs/{id}).
func (c *Client) RunGet(ctx context.Context, id string) (*Run, error) {
	var r Run
	if err := c.do(ctx, http.MethodGet, "/runs/"+url.PathEscape(id), nil, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// RunKill asks jobd to kill the run with id (POST /runs/{id}/kill) and
// returns the run as it is after the request: RunKilled at once for a run
// no executor started yet, else still running (or assigned) until its
// executor confirms the kill. A run that already ended is a conflict
// (IsConflict).
func (c *Client) RunKill(ctx context.Context, id string) (*Run, error) {
	var r Run
	if err := c.do(ctx, http.MethodPost, "/runs/"+url.PathEscape(id)+"/kill", nil, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// RunStateHeader is the header of a run's logs that carries the run's state
// when the answer started.
const RunStateHeader = "X-Jobd-Run-State"

// RunLogs opens the stored output of the run with id from byte offset on
// (GET /runs/{id}/logs). It returns the output as it arrives, unbuffered,
// and the run's state when the answer started (RunStateHeader). With
// follow, the body stays open and streams new output until the run has
// ended and all its output was sent; it then ends with io.EOF, whereas a
// connection lost on the way fails the read with another error. Only ctx
// bounds how long the body stays open. The caller must close the body.
func (c *Client) RunLogs(ctx context.Context, id string, offset int64, follow bool) (io.ReadCloser, string, error) {
	q := url.Values{}
	q.Set("offset", strconv.FormatInt(offset, 10))
	q.Set("follow", strconv.FormatBool(follow))
	resp, err := c.send(ctx, http.MethodGet, "/runs/"+url.PathEscape(id)+"/logs", q, nil, "text/plain")
	if err != nil {
		return nil, "", err
	}
	return resp.Body, resp.Header.Get(RunStateHeader), nil
}

// JobScripts lists the stored versions of the source of the script job
// called name, newest first (GET /jobs/{name}/scripts). The slice is never
// nil.
func (c *Client) JobScripts(ctx context.Context, name string) ([]ScriptVersion, error) {
	versions := []ScriptVersion{}
	if err := c.do(ctx, http.MethodGet, jobPath(name)+"/scripts", nil, nil, &versions); err != nil {
		return nil, err
	}
	if versions == nil {
		versions = []ScriptVersion{}
	}
	return versions, nil
}

// JobScript returns the source of version of the script job called name
// (GET /jobs/{name}/scripts/{version}).
func (c *Client) JobScript(ctx context.Context, name string, version int) (string, error) {
	path := jobPath(name) + "/scripts/" + strconv.Itoa(version)
	resp, err := c.send(ctx, http.MethodGet, path, nil, nil, "text/plain")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("GET %s: read answer: %w", path, err)
	}
	return string(b), nil
}

// MissedList returns the records of missed triggers (GET /missed). The slice
// is never nil.
func (c *Client) MissedList(ctx context.Context, opts MissedListOptions) ([]Missed, error) {
	q := url.Values{}
	setNonEmpty(q, "job", opts.Job)
	setTime(q, "since", opts.Since)
	setTime(q, "until", opts.Until)
	missed := []Missed{}
	if err := c.do(ctx, http.MethodGet, "/missed", q, nil, &missed); err != nil {
		return nil, err
	}
	if missed == nil {
		missed = []Missed{}
	}
	return missed, nil
}

// Replay fires recorded missed triggers again, or lists them when
// req.DryRun (POST /replay).
func (c *Client) Replay(ctx context.Context, req ReplayRequest) (*ReplayResponse, error) {
	var rr ReplayResponse
	if err := c.do(ctx, http.MethodPost, "/replay", nil, req, &rr); err != nil {
		return nil, err
	}
	return &rr, nil
}

// ExecutorList returns the registered executors (GET /executors). The slice
// is never nil.
func (c *Client) ExecutorList(ctx context.Context) ([]Executor, error) {
	execs := []Executor{}
	if err := c.do(ctx, http.MethodGet, "/executors", nil, nil, &execs); err != nil {
		return nil, err
	}
	if execs == nil {
		execs = []Executor{}
	}
	return execs, nil
}

// ExecutorGet returns the executor with id (GET /executors/{id}).
func (c *Client) ExecutorGet(ctx context.Context, id string) (*Executor, error) {
	var e Executor
	if err := c.do(ctx, http.MethodGet, executorPath(id), nil, nil, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

func executorPath(id string) string { return "/executors/" + url.PathEscape(id) }

// ExecutorDrain starts draining the executor with id (POST
// /executors/{id}/drain): jobd stops routing runs to it at once, and it
// finishes (or, at req.Timeout, hands back) its running runs and reports
// drained. It returns the executor as it is after the request, normally
// ExecutorDraining with Drain set. An offline or already drained executor is
// a conflict (IsConflict); an unknown id is not found (IsNotFound).
func (c *Client) ExecutorDrain(ctx context.Context, id string, req DrainRequest) (*Executor, error) {
	var e Executor
	if err := c.do(ctx, http.MethodPost, executorPath(id)+"/drain", nil, req, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// ExecutorUndrain ends the drain of the executor with id (POST
// /executors/{id}/undrain), so that it gets runs again, and returns it as it
// is after the request (normally ExecutorOnline). An executor that is not
// draining is a conflict (IsConflict).
func (c *Client) ExecutorUndrain(ctx context.Context, id string) (*Executor, error) {
	var e Executor
	if err := c.do(ctx, http.MethodPost, executorPath(id)+"/undrain", nil, nil, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// Register registers an executor (POST /executor/register).
func (c *Client) Register(ctx context.Context, req RegisterRequest) (*RegisterResponse, error) {
	var rr RegisterResponse
	if err := c.do(ctx, http.MethodPost, "/executor/register", nil, req, &rr); err != nil {
		return nil, err
	}
	return &rr, nil
}

// Poll is an executor's heartbeat and long poll for work (POST
// /executor/{id}/poll). jobd may hold it open up to req.Wait, so ctx should
// allow somewhat more than that. An unknown id answers 404 (IsNotFound):
// register again.
func (c *Client) Poll(ctx context.Context, id string, req PollRequest) (*PollResponse, error) {
	var pr PollResponse
	if err := c.do(ctx, http.MethodPost, "/executor/"+url.PathEscape(id)+"/poll", nil, req, &pr); err != nil {
		return nil, err
	}
	return &pr, nil
}

// Deregister removes an executor on a clean stop (POST
// /executor/{id}/deregister).
func (c *Client) Deregister(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, "/executor/"+url.PathEscape(id)+"/deregister", nil, nil, nil)
}

// Report sends one report about the run runID (POST /runs/{id}/report). It
// returns once jobd has stored it.
func (c *Client) Report(ctx context.Context, runID string, rep Report) (*ReportResponse, error) {
	var rr ReportResponse
	if err := c.do(ctx, http.MethodPost, "/runs/"+url.PathEscape(runID)+"/report", nil, rep, &rr); err != nil {
		return nil, err
	}
	return &rr, nil
}

// Reports sends a batch of reports of executor id (POST
// /api/v1/executor/{id}/reports).
func (c *Client) Reports(ctx context.Context, id string, batch ReportBatch) (*ReportBatchResponse, error) {
	var rr ReportBatchResponse
	if err := c.do(ctx, http.MethodPost, "/executor/"+url.PathEscape(id)+"/reports", nil, batch, &rr); err != nil {
		return nil, err
	}
	return &rr, nil
}
