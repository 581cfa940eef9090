package daemon

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the configuration of jobd serve. Precedence, lowest first:
// DefaultConfig, a YAML file (ParseFile), JOBD_* environment variables
// (ApplyEnv), command-line flags (applied by the caller).
type Config struct {
	// StateDir holds the SQLite database and run logs.
	StateDir string `yaml:"state_dir"`
	// Socket is the admin unix socket path.
	Socket string `yaml:"socket"`
	// SocketMode is the permission of the socket file (octal string, "0660").
	SocketMode string `yaml:"socket_mode"`
	// Listen is the TCP address executors connect to ("" disables it).
	Listen string `yaml:"listen"`
	// LogFormat is "text" or "json".
	LogFormat string `yaml:"log_format"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// LookAhead is how far ahead triggers are stored before they are due.
	LookAhead time.Duration `yaml:"look_ahead"`
	// HeartbeatInterval is how often executors poll; three missed
	// heartbeats mark an executor offline.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// MaxBodyBytes limits request bodies.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// RetentionDays is how long ended runs and their output are kept; 0
	// keeps them forever.
	RetentionDays int `yaml:"retention_days"`
	// ExecutorTokens maps an executor group to the token its executors
	// must present on the TCP listener; the key "*" admits any group
	// without a token of its own. Required when Listen is not loopback.
	ExecutorTokens map[string]Secret `yaml:"executor_tokens"`
	// ExecutorTokensFile is a YAML file of the same map, read at start
	// (keeps tokens out of the main config).
	ExecutorTokensFile string `yaml:"executor_tokens_file"`
	// AdminToken, if set, serves the admin API over TCP to requests that
	// carry it (jobctl --addr --token).
	AdminToken Secret `yaml:"admin_token"`
	// TLSCert and TLSKey, if set, serve the TCP listener over TLS.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
}

// DefaultConfig returns the built-in defaults.
func DefaultConfig() Config {
	return Config{
		StateDir:          "/var/lib/jobd",
		SocketMode:        "0660",
		Listen:            "127.0.0.1:7070",
		LogFormat:         "text",
		LogLevel:          "info",
		LookAhead:         5 * time.Second,
		HeartbeatInterval: 2 * time.Second,
		MaxBodyBytes:      1 << 20,
		RetentionDays:     30,
	}
}

// ParseFile overlays the YAML file at path on c. Unknown keys are errors.
func (c *Config) ParseFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	// An empty file decodes to io.EOF and changes nothing.
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("parse config %s: %w", path, err)
	}
	return nil
}

// ApplyEnv overlays JOBD_* variables from environ (as os.Environ returns).
func (c *Config) ApplyEnv(environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "JOBD_") {
			env[k] = v
		}
	}
	str := func(key string, dst *string) {
		if v, ok := env[key]; ok {
			*dst = v
		}
	}
	dur := func(key string, dst *time.Duration) error {
		if v, ok := env[key]; ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				return &ConfigValidationError{Field: key, Err: err}
			}
			*dst = d
		}
		return nil
	}
	str("JOBD_STATE_DIR", &c.StateDir)
	str("JOBD_SOCKET", &c.Socket)
	str("JOBD_SOCKET_MODE", &c.SocketMode)
	str("JOBD_LISTEN", &c.Listen)
	str("JOBD_LOG_FORMAT", &c.LogFormat)
	str("JOBD_LOG_LEVEL", &c.LogLevel)
	str("JOBD_EXECUTOR_TOKENS_FILE", &c.ExecutorTokensFile)
	str("JOBD_TLS_CERT", &c.TLSCert)
	str("JOBD_TLS_KEY", &c.TLSKey)
	if v, ok := env["JOBD_ADMIN_TOKEN"]; ok {
		c.AdminToken = Secret(v)
	}
	if err := dur("JOBD_LOOK_AHEAD", &c.LookAhead); err != nil {
		return err
	}
	if err := dur("JOBD_HEARTBEAT_INTERVAL", &c.HeartbeatInterval); err != nil {
		return err
	}
	if v, ok := env["JOBD_RETENTION_DAYS"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return &ConfigValidationError{Field: "JOBD_RETENTION_DAYS", Err: err}
		}
		c.RetentionDays = n
	}
	if v, ok := env["JOBD_MAX_BODY_BYTES"]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return &ConfigValidationError{Field: "JOBD_MAX_BODY_BYTES", Err: err}
		}
		c.MaxBodyBytes = n
	}
	return nil
}

// ConfigValidationError names the configuration field at fault.
type ConfigValidationError struct {
	Field string
	Err   error
}

func (e *ConfigValidationError) Error() string { return fmt.Sprintf("config %s: %v", e.Field, e.Err) }

// Unwrap returns the cause.
func (e *ConfigValidationError) Unwrap() error { return e.Err }

// Validate checks c and returns the first field error.
func (c *Config) Validate() error {
	if c.StateDir == "" {
		return &ConfigValidationError{Field: "state_dir", Err: errors.New("required")}
	}
	if c.Socket == "" {
		return &ConfigValidationError{Field: "socket", Err: errors.New("required")}
	}
	if _, err := c.socketMode(); err != nil {
		return &ConfigValidationError{Field: "socket_mode", Err: err}
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			return &ConfigValidationError{Field: "listen", Err: err}
		}
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return &ConfigValidationError{Field: "log_format", Err: fmt.Errorf("%q: want text or json", c.LogFormat)}
	}
	if _, err := c.logLevel(); err != nil {
		return &ConfigValidationError{Field: "log_level", Err: err}
	}
	if c.LookAhead < 500*time.Millisecond || c.LookAhead > time.Minute {
		return &ConfigValidationError{Field: "look_ahead", Err: fmt.Errorf("%s: want 500ms to 1m", c.LookAhead)}
	}
	if c.HeartbeatInterval < 100*time.Millisecond || c.HeartbeatInterval > time.Minute {
		return &ConfigValidationError{Field: "heartbeat_interval", Err: fmt.Errorf("%s: want 100ms to 1m", c.HeartbeatInterval)}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return &ConfigValidationError{Field: "tls_cert", Err: errors.New("tls_cert and tls_key go together")}
	}
	if c.ExecutorTokensFile != "" {
		m, err := loadTokensFile(c.ExecutorTokensFile)
		if err != nil {
			return &ConfigValidationError{Field: "executor_tokens_file", Err: err}
		}
		if c.ExecutorTokens == nil {
			c.ExecutorTokens = map[string]Secret{}
		}
		for g, t := range m {
			c.ExecutorTokens[g] = t
		}
		c.ExecutorTokensFile = ""
	}
	for g, t := range c.ExecutorTokens {
		if t == "" {
			return &ConfigValidationError{Field: "executor_tokens", Err: fmt.Errorf("group %q has an empty token", g)}
		}
	}
	if c.Listen != "" && !loopback(c.Listen) && len(c.ExecutorTokens) == 0 {
		return &ConfigValidationError{Field: "executor_tokens", Err: fmt.Errorf("listen %s is reachable from other hosts: set executor_tokens (or listen on 127.0.0.1)", c.Listen)}
	}
	if c.RetentionDays < 0 {
		return &ConfigValidationError{Field: "retention_days", Err: fmt.Errorf("%d: must not be negative", c.RetentionDays)}
	}
	if c.MaxBodyBytes < 1024 {
		return &ConfigValidationError{Field: "max_body_bytes", Err: fmt.Errorf("%d: want at least 1024", c.MaxBodyBytes)}
	}
	return nil
}

func (c *Config) socketMode() (os.FileMode, error) {
	m, err := strconv.ParseUint(c.SocketMode, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("%q: want an octal mode like 0660", c.SocketMode)
	}
	return os.FileMode(m), nil
}

func (c *Config) logLevel() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return 0, fmt.Errorf("%q: want debug, info, warn or error", c.LogLevel)
	}
	return l, nil
}

// DBPath is the SQLite database file under StateDir.
func (c *Config) DBPath() string { return filepath.Join(c.StateDir, "jobd.db") }

// NewLogger builds the slog logger the config asks for, writing to w.
func (c *Config) NewLogger(w *os.File) *slog.Logger {
	lvl, _ := c.logLevel()
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
