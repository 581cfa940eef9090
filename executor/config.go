package executor

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

// Defaults applied by New to the zero fields of a Config.
const (
	DefaultSlots         = 4
	DefaultPollWait      = 25 * time.Second
	DefaultKillGrace     = 5 * time.Second
	DefaultShutdownGrace = 30 * time.Second
	// DefaultSpoolMaxBytes bounds the report spool: at 100 KiB of reports a
	// second, jobd may be down for almost three hours before it fills.
	DefaultSpoolMaxBytes int64 = 1 << 30
)

// Config configures an Agent. Zero fields take the defaults documented on
// each field.
type Config struct {
	// Servers are the base URLs of jobd ("https://jobd.example:7070"), all
	// serving the same scheduler (one jobd, or several on one PostgreSQL).
	// The agent sends every request to the last server that answered, and
	// when that one cannot be reached tries the others in order.
	Servers []string
	// Group is the executor group to join; jobd creates it on first use.
	Group string
	// Name identifies the executor in its group; it defaults to the host name.
	Name string
	// Labels are matched by job selectors (region=eu).
	Labels map[string]string
	// Token is the group token, sent as a bearer token when set. It never
	// appears in logs or errors.
	Token string
	// Slots is how many runs execute at once; 4 by default.
	Slots int
	// StateDir holds the agent's files: the report spool (StateDir/spool)
	// and the scripts being run (StateDir/scripts). It is created when
	// missing, and only one Agent at a time may use it.
	//
	// Empty means no spool: reports wait in memory while no jobd answers,
	// running jobs block once that memory queue is full, and reports still
	// undelivered when the agent stops are lost. Scripts then go to the
	// system temporary directory.
	StateDir string
	// SpoolMaxBytes bounds the report spool on disk; 1 GiB by default. When
	// it is full, reports wait in memory and then jobs writing output block,
	// as without a spool.
	SpoolMaxBytes int64
	// Version is reported to jobd; "dev" by default.
	Version string
	// Logger receives the agent's logs; nothing is logged when nil.
	Logger *slog.Logger
	// PollWait is how long jobd may hold a poll open with nothing to say;
	// 25s by default, and never more than jobd's heartbeat interval.
	PollWait time.Duration
	// KillGrace is how long a process group has to exit after SIGTERM (on
	// timeout or kill) before it gets SIGKILL, and how long a handler has to
	// return after its context is cancelled; 5s by default.
	KillGrace time.Duration
	// ShutdownGrace is how long Run, once its context is done, waits for
	// running runs to finish before it kills them; 30s by default. It is
	// also the timeout of the drain the agent asks of jobd then. Under
	// systemd, keep it below the unit's TimeoutStopSec, with room for the
	// final report delivery (up to KillGrace and 10 seconds more).
	ShutdownGrace time.Duration
	// TLSConfig verifies https:// servers (and may carry a client
	// certificate). Nil means the system's roots, plus CAFile.
	TLSConfig *tls.Config
	// CAFile is a PEM bundle of certificates added to the roots that verify
	// https:// servers: those of TLSConfig, or else the system's.
	CAFile string
	// HTTPClient talks to jobd (proxies, custom transports). By default a
	// client with no timeout of its own, since every request carries a
	// context, and with TLSConfig and CAFile applied; when it is set, those
	// two must be empty (configure TLS on its transport instead). It is not
	// used for http jobs, which must never see the token.
	HTTPClient *http.Client
}

// ConfigError is a Config field that fails validation.
type ConfigError struct {
	Field string
	Err   error
}

// Error implements error.
func (e *ConfigError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *ConfigError) Unwrap() error { return e.Err }

// Validate reports every invalid field of c as a *ConfigError, joined. Zero
// fields are valid: New replaces them with their defaults. Validate reads
// no file: New reports a CAFile it cannot load.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &ConfigError{Field: field, Err: fmt.Errorf(format, args...)})
	}
	if len(c.Servers) == 0 {
		bad("servers", "at least one jobd URL is required")
	}
	for i, s := range c.Servers {
		u, err := url.Parse(s)
		switch {
		case err != nil:
			bad(fmt.Sprintf("servers[%d]", i), "%w", redactURLError(err))
		case u.Scheme != "http" && u.Scheme != "https":
			bad(fmt.Sprintf("servers[%d]", i), "%q: want an http or https URL", u.Redacted())
		case u.Host == "":
			bad(fmt.Sprintf("servers[%d]", i), "%q: no host", u.Redacted())
		}
	}
	if strings.TrimSpace(c.Group) == "" {
		bad("group", "required")
	}
	if c.Name != strings.TrimSpace(c.Name) {
		bad("name", "%q has leading or trailing space", c.Name)
	}
	for k := range c.Labels {
		if strings.TrimSpace(k) == "" {
			bad("labels", "empty label name")
		}
	}
	if c.Slots < 0 {
		bad("slots", "%d: must not be negative", c.Slots)
	}
	if c.SpoolMaxBytes < 0 {
		bad("spool_max_bytes", "%d: must not be negative", c.SpoolMaxBytes)
	}
	for field, d := range map[string]time.Duration{
		"poll_wait": c.PollWait, "kill_grace": c.KillGrace, "shutdown_grace": c.ShutdownGrace,
	} {
		if d < 0 {
			bad(field, "%s: must not be negative", d)
		}
	}
	if c.HTTPClient != nil && (c.TLSConfig != nil || c.CAFile != "") {
		bad("http_client", "set together with tls_config or ca_file: configure TLS on its transport instead")
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// redactURLError drops the URL from a parse error: it may hold a password.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// withDefaults returns c with its zero fields set.
func (c Config) withDefaults() (Config, error) {
	if c.Name == "" {
		host, err := os.Hostname()
		if err != nil {
			return c, fmt.Errorf("default name: %w", err)
		}
		c.Name = host
	}
	if c.Slots == 0 {
		c.Slots = DefaultSlots
	}
	if c.SpoolMaxBytes == 0 {
		c.SpoolMaxBytes = DefaultSpoolMaxBytes
	}
	if c.PollWait == 0 {
		c.PollWait = DefaultPollWait
	}
	if c.KillGrace == 0 {
		c.KillGrace = DefaultKillGrace
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.HTTPClient == nil {
		client, err := newHTTPClient(c.TLSConfig, c.CAFile)
		if err != nil {
			return c, err
		}
		c.HTTPClient = client
	}
	c.Servers = slices.Clone(c.Servers)
	return c, nil
}

// newHTTPClient returns a client for jobd whose transport is a copy of
// http.DefaultTransport (proxy from the environment, HTTP/2, timeouts)
// verifying servers with tlsConfig's roots or the system's, plus the
// certificates of caFile.
func newHTTPClient(tlsConfig *tls.Config, caFile string) (*http.Client, error) {
	if tlsConfig == nil && caFile == "" {
		return &http.Client{}, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if tlsConfig != nil {
		tc = tlsConfig.Clone()
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, &ConfigError{Field: "ca_file", Err: err}
		}
		pool := tc.RootCAs
		if pool == nil {
			if pool, err = x509.SystemCertPool(); err != nil {
				pool = x509.NewCertPool()
			}
		} else {
			pool = pool.Clone()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &ConfigError{Field: "ca_file", Err: fmt.Errorf("%s: no PEM certificate in it", caFile)}
		}
		tc.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &http.Client{Transport: tr}, nil
}
