package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jobd/jobd/api"
)

// maxResponseBytes caps how much of a jobd answer the agent reads. A poll
// answer carries assignments with their scripts, so it is generous.
const maxResponseBytes = 8 << 20

// requestTimeout bounds one request that jobd does not hold open (register,
// report, deregister). Polls get their wait plus pollSlack instead.
const requestTimeout = 30 * time.Second

// statusError is a non-2xx answer from jobd.
type statusError struct {
	Status  int
	Message string
}

func (e *statusError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("jobd answered %d %s", e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("jobd answered %d: %s", e.Status, e.Message)
}

// isNotFound reports whether jobd answered 404. From a poll it means jobd
// does not know the executor (any more) and it must register again.
func isNotFound(err error) bool {
	var se *statusError
	return errors.As(err, &se) && se.Status == http.StatusNotFound
}

// isRetryable reports whether the same request may succeed later: jobd could
// not be reached, or answered with a server error or "slow down".
func isRetryable(err error) bool {
	var se *statusError
	if !errors.As(err, &se) {
		return true
	}
	switch se.Status {
	case http.StatusRequestTimeout, http.StatusTooManyRequests:
		return true
	}
	return se.Status >= 500
}

// failsOver reports whether the next server should be tried: this one could
// not be reached or said it cannot serve now.
func failsOver(err error) bool {
	var se *statusError
	if !errors.As(err, &se) {
		return true
	}
	switch se.Status {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// transport posts JSON to jobd's API. It keeps sending to the last server
// that answered and fails over to the others in order when it cannot reach
// it. It is safe for concurrent use.
type transport struct {
	servers []string // base URLs without a trailing slash
	token   string
	client  *http.Client

	mu  sync.Mutex
	cur int // index in servers of the last server that answered
}

func newTransport(servers []string, token string, client *http.Client) *transport {
	base := make([]string, len(servers))
	for i, s := range servers {
		base[i] = strings.TrimRight(s, "/")
	}
	return &transport{servers: base, token: token, client: client}
}

// skip makes the next request start with the server after the current
// one (the current one said it is going away).
func (t *transport) skip() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cur = (t.cur + 1) % len(t.servers)
}

// post sends in as JSON to path (below /api/v1) and decodes a 2xx answer
// into out, when out is not nil. Other answers come back as *statusError.
func (t *transport) post(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	t.mu.Lock()
	start := t.cur
	t.mu.Unlock()

	var lastErr error
	for i := range len(t.servers) {
		idx := (start + i) % len(t.servers)
		err := t.postTo(ctx, t.servers[idx], path, body, out)
		if err == nil || !failsOver(err) {
			t.mu.Lock()
			t.cur = idx
			t.mu.Unlock()
			return err
		}
		lastErr = err
		if ctx.Err() != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				// The server hung until the request timed out (a silent
				// partition): start with the next one next time.
				t.mu.Lock()
				t.cur = (idx + 1) % len(t.servers)
				t.mu.Unlock()
			}
			break
		}
	}
	return lastErr
}

func (t *transport) postTo(ctx context.Context, base, path string, body []byte, out any) error {
	url := base + api.Prefix + path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if t.token != "" {
		req.Header.Set("Authorization", "Bearer "+t.token)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		// The error names the URL, which never holds the token.
		return fmt.Errorf("post %s: %w", path, err)
	}
	defer resp.Body.Close()
	limited := io.LimitReader(resp.Body, maxResponseBytes+1)

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg, _ := io.ReadAll(io.LimitReader(limited, 4<<10))
		return &statusError{Status: resp.StatusCode, Message: errorMessage(msg)}
	}
	raw, err := io.ReadAll(limited)
	if err != nil {
		return fmt.Errorf("post %s: read answer: %w", path, err)
	}
	if len(raw) > maxResponseBytes {
		return fmt.Errorf("post %s: answer larger than %d bytes", path, maxResponseBytes)
	}
	if out == nil || len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("post %s: decode answer: %w", path, err)
	}
	return nil
}

// errorMessage extracts the message of an error answer: the "error" field of
// an api.ErrorBody, or else the start of the body as text.
func errorMessage(body []byte) string {
	var eb api.ErrorBody
	if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
		if eb.Field != "" {
			return eb.Field + ": " + eb.Error
		}
		return eb.Error
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// backoff yields exponentially growing delays with jitter, capped at max.
type backoff struct {
	min, max time.Duration
	next     time.Duration
}

func newBackoff() *backoff {
	return &backoff{min: 100 * time.Millisecond, max: 2 * time.Second}
}

// delay returns the next delay: half of the current step plus a random part
// of the other half, so agents that lost jobd together do not retry in step.
func (b *backoff) delay() time.Duration {
	if b.next < b.min {
		b.next = b.min
	}
	d := b.next
	b.next = min(b.next*2, b.max)
	return d/2 + rand.N(d/2+1)
}

// reset starts over from the smallest delay after a success.
func (b *backoff) reset() { b.next = 0 }

// sleepCtx waits for d or until ctx is done; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
