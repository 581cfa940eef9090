package daemon

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/jobd/jobd/api"
)

// ErrUnauthorized answers a request over TCP without the right token.
var ErrUnauthorized = errors.New("unauthorized")

// Secret is a token. It never prints: String and the log value are
// redacted.
type Secret string

// String redacts the secret.
func (Secret) String() string { return "[redacted]" }

// GoString redacts the secret.
func (Secret) GoString() string { return "[redacted]" }

// MarshalJSON redacts the secret.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// AnyGroup is the executor_tokens key whose token admits executors of any
// group without a token of its own.
const AnyGroup = "*"

// loadTokensFile reads a YAML map of group → token.
func loadTokensFile(path string) (map[string]Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read executor tokens: %w", err)
	}
	var m map[string]string
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parse executor tokens %s: %w", path, err)
	}
	out := make(map[string]Secret, len(m))
	for g, t := range m {
		out[g] = Secret(strings.TrimSpace(t))
	}
	return out, nil
}

type remoteKey struct{}

// remote marks requests that came over the TCP listener.
func remote(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), remoteKey{}, true)))
	})
}

func isRemote(r *http.Request) bool { v, _ := r.Context().Value(remoteKey{}).(bool); return v }

// bearer returns the request's bearer token.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if t, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return ""
}

// tokenEqual compares in constant time.
func tokenEqual(got string, want Secret) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// authorizeGroup checks a TCP request carries the token of group (or the
// AnyGroup token). Requests on the unix socket and jobd without tokens
// configured pass.
func (s *Server) authorizeGroup(r *http.Request, group string) error {
	tokens := s.d.cfg.ExecutorTokens
	if !isRemote(r) || len(tokens) == 0 {
		return nil
	}
	got := bearer(r)
	if want, ok := tokens[group]; ok {
		if tokenEqual(got, want) {
			return nil
		}
	} else if tokenEqual(got, tokens[AnyGroup]) {
		return nil
	}
	s.log.Warn("executor request refused: bad or missing token", LogKeyGroup, group,
		"remote", r.RemoteAddr, "path", r.URL.Path, "token_given", got != "")
	if got == "" {
		return fmt.Errorf("%w: executor group %q needs a token (--token)", ErrUnauthorized, group)
	}
	return fmt.Errorf("%w: the token is not valid for executor group %q", ErrUnauthorized, group)
}

// authorizeExecutor checks the token for the group of a registered
// executor.
func (s *Server) authorizeExecutor(r *http.Request, id string) error {
	if !isRemote(r) || len(s.d.cfg.ExecutorTokens) == 0 {
		return nil
	}
	group, ok := s.d.disp.GroupOf(id)
	if !ok {
		return ErrUnknownExecutor
	}
	return s.authorizeGroup(r, group)
}

// adminOverTCP serves the admin API on the TCP listener to requests with
// the admin token, and refuses it otherwise.
func (s *Server) adminOverTCP(admin http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.d.cfg.AdminToken == "" {
			writeJSON(w, http.StatusForbidden, api.ErrorBody{Error: "the admin API is served on the unix socket only (set admin_token to serve it over TCP)"})
			return
		}
		if !tokenEqual(bearer(r), s.d.cfg.AdminToken) {
			writeJSON(w, http.StatusUnauthorized, api.ErrorBody{Error: "unauthorized: the admin API needs the admin token"})
			return
		}
		admin.ServeHTTP(w, r)
	})
}

// loopback reports whether a listen address only accepts local
// connections.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
