package executor

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxHTTPJobBody caps how much of an http job's response body is logged.
const maxHTTPJobBody = 64 << 10

// runHTTP performs the run's HTTP request under the run's context, so a
// timeout or kill aborts it. A 2xx status succeeds the run; the status line
// and the start of the body go to the run's log.
func (a *Agent) runHTTP(r *run) outcome {
	h := r.asg.HTTP
	if h == nil || h.URL == "" {
		return failed(errors.New("http job without a url"))
	}
	u, err := url.Parse(h.URL)
	if err != nil {
		return failed(fmt.Errorf("http job url: %w", err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return failed(fmt.Errorf("http job url %q: want http or https", u.Redacted()))
	}
	method := h.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(r.ctx, method, u.String(), strings.NewReader(h.Body))
	if err != nil {
		return failed(fmt.Errorf("http job request: %w", err))
	}
	for k, v := range h.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	r.reportStart()
	resp, err := a.httpJobs.Do(req)
	if err != nil {
		if se := r.stopped(); se != nil {
			return stoppedOutcome(se)
		}
		return failed(fmt.Errorf("http job: %w", err))
	}
	defer resp.Body.Close()
	fmt.Fprintf(r.output, "%s %s\n", resp.Proto, resp.Status)
	n, _ := io.Copy(r.output, io.LimitReader(resp.Body, maxHTTPJobBody))
	if n == maxHTTPJobBody {
		if extra, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, 1)); extra > 0 {
			fmt.Fprintf(r.output, "\n[body truncated at %d bytes]\n", maxHTTPJobBody)
		}
	}
	if se := r.stopped(); se != nil {
		return stoppedOutcome(se)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return failed(fmt.Errorf("http status %s", resp.Status))
	}
	return succeeded()
}
