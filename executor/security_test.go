package executor

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// writeCertPEM writes the certificate of a TLS test server to a PEM file.
func writeCertPEM(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}

// newTLSFakeJobd returns a fake jobd whose only server speaks TLS.
func newTLSFakeJobd(t *testing.T) (*fakeJobd, *fakeServer) {
	t.Helper()
	f := newFakeJobd(t)
	f.setDown(f.servers[0], true)
	return f, f.addServer(true)
}

func TestAgent_TLS(t *testing.T) {
	t.Parallel()
	t.Run("CAFile", func(t *testing.T) {
		t.Parallel()
		f, srv := newTLSFakeJobd(t)
		b := setupWith(t, f, func(c *Config, _ *fakeJobd) {
			c.Servers = []string{srv.srv.URL}
			c.CAFile = writeCertPEM(t, srv.srv)
		})
		b.jobd.assign(commandJob("r1", "echo", "over tls"))
		require.Equal(t, api.RunSucceeded, b.jobd.result("r1").State)
		require.Equal(t, "over tls\n", b.jobd.log("r1"))
	})
	t.Run("TLSConfig", func(t *testing.T) {
		t.Parallel()
		f, srv := newTLSFakeJobd(t)
		pool := x509.NewCertPool()
		pool.AddCert(srv.srv.Certificate())
		b := setupWith(t, f, func(c *Config, _ *fakeJobd) {
			c.Servers = []string{srv.srv.URL}
			c.TLSConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		})
		b.jobd.assign(commandJob("r1", "true"))
		require.Equal(t, api.RunSucceeded, b.jobd.result("r1").State)
	})
	t.Run("UnknownAuthority", func(t *testing.T) {
		t.Parallel()
		_, srv := newTLSFakeJobd(t)
		client, err := newHTTPClient(nil, "")
		require.NoError(t, err)
		tr := newTransport([]string{srv.srv.URL}, "test-token", client)
		err = tr.post(context.Background(), "/executor/register", &api.RegisterRequest{}, nil)
		var uae x509.UnknownAuthorityError
		require.ErrorAs(t, err, &uae, "a jobd certificate no root vouches for is refused: %v", err)
		require.True(t, isRetryable(err))
	})
	t.Run("CAFileAddsToTLSConfigRoots", func(t *testing.T) {
		t.Parallel()
		_, srv := newTLSFakeJobd(t)
		client, err := newHTTPClient(&tls.Config{RootCAs: x509.NewCertPool(), ServerName: "example.com"}, writeCertPEM(t, srv.srv))
		require.NoError(t, err)
		tc := client.Transport.(*http.Transport).TLSClientConfig
		require.Equal(t, "example.com", tc.ServerName, "the rest of TLSConfig is kept")
		require.True(t, tc.RootCAs.Equal(func() *x509.CertPool {
			p := x509.NewCertPool()
			p.AddCert(srv.srv.Certificate())
			return p
		}()))
	})
}

func TestNew_TLSErrors(t *testing.T) {
	t.Parallel()
	base := func() Config { return Config{Servers: []string{"https://jobd.test:7070"}, Group: "g"} }
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello"), 0o600))

	cfg := base()
	cfg.CAFile = filepath.Join(dir, "missing.pem")
	_, err := New(cfg)
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "ca_file", ce.Field)
	require.ErrorIs(t, err, os.ErrNotExist)

	cfg = base()
	cfg.CAFile = notPEM
	_, err = New(cfg)
	require.ErrorContains(t, err, "ca_file: "+notPEM+": no PEM certificate in it")

	cfg = base()
	cfg.CAFile = notPEM
	cfg.HTTPClient = &http.Client{}
	require.ErrorContains(t, cfg.Validate(), "http_client: set together with tls_config or ca_file")
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func TestAgent_TokenRefused(t *testing.T) {
	t.Parallel()
	const token = "s3cr3t-t0ken-8f14e45f"
	var logs lockedBuffer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A jobd that echoes what it got would leak it; ours do not.
		writeJSON(w, http.StatusUnauthorized, api.ErrorBody{Error: "invalid token for group test"})
	}))
	t.Cleanup(srv.Close)
	a, err := New(Config{
		Servers:  []string{srv.URL},
		Group:    "test",
		Token:    token,
		StateDir: t.TempDir(),
		Logger:   slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background()) }()
	select {
	case err = <-done:
	case <-time.After(waitTimeout):
		t.Fatal("Run did not stop on a refused token")
	}
	require.EqualError(t, err, `register: jobd refused the token for group "test": jobd answered 401: invalid token for group test`)
	require.NotContains(t, err.Error(), token)
	require.NotContains(t, logs.String(), token)
}

func TestAgent_TokenNeverLogged(t *testing.T) {
	t.Parallel()
	const token = "s3cr3t-t0ken-c9f0f895"
	var logs lockedBuffer
	f := newFakeJobd(t)
	f.mu.Lock()
	f.token = token
	f.mu.Unlock()
	srvB := f.addServer(false)
	f.setDown(f.servers[0], true) // failover errors name the servers
	b := setupWith(t, f, func(c *Config, _ *fakeJobd) {
		c.Servers = []string{f.servers[0].srv.URL, srvB.srv.URL}
		c.Token = token
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		f.failReports["r2"] = []int{http.StatusInternalServerError}
	})
	b.jobd.assign(commandJob("r1", "sh", "-c", "echo failing; exit 3"))
	b.jobd.assign(commandJob("r2", "true"))
	require.Equal(t, api.RunFailed, b.jobd.result("r1").State)
	require.Equal(t, api.RunSucceeded, b.jobd.result("r2").State)
	require.NoError(t, b.stop())
	out := logs.String()
	require.Contains(t, out, "level=WARN", "failures were logged")
	require.NotContains(t, out, token)
}

func TestAgent_NoTokenRefused(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusForbidden, api.ErrorBody{Error: "token required"})
	}))
	t.Cleanup(srv.Close)
	a, err := New(Config{Servers: []string{srv.URL}, Group: "g", Logger: testLogger(t)})
	require.NoError(t, err)
	err = a.Run(context.Background())
	require.EqualError(t, err, `register: jobd requires a token for group "g" and none is configured: jobd answered 403: token required`)
	require.False(t, errors.Is(err, context.Canceled))
}
