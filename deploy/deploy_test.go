// Package deploy holds the systemd units and example configuration; its
// test checks the units with systemd-analyze where it is installed, and
// that `make install` puts everything in place.
package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnitsVerify runs systemd-analyze verify on the units (with the jobd
// path pointed at an existing binary), and checks the hardening score of
// jobd.service.
func TestUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: units not verified")
	}
	dir := t.TempDir()
	for _, unit := range []string{"jobd.service", "jobd-executor.service"} {
		b, err := os.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), "/usr/local/bin/jobd", "/bin/true")
		path := filepath.Join(dir, unit)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(analyze, "verify", path).CombinedOutput()
		// verify also reports on units it pulls in from the host; only
		// lines about ours count.
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, unit) {
				t.Errorf("systemd-analyze verify %s: %s", unit, line)
			}
		}
		if err != nil && !strings.Contains(string(out), unit) {
			t.Logf("systemd-analyze verify %s exited %v (nothing about the unit): %s", unit, err, out)
		}
	}
	out, err := exec.Command(analyze, "security", "--offline=true", filepath.Join(dir, "jobd.service")).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Overall exposure level for jobd.service: 1.") && !strings.Contains(string(out), "exposure level for jobd.service: 0.") {
		t.Errorf("jobd.service should score below 2.0 (OK):\n%s", lastLines(string(out), 3))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestMakeInstall runs `make install` into a temporary PREFIX.
func TestMakeInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	prefix := t.TempDir()
	cmd := exec.Command("make", "-C", "..", "install", "PREFIX="+prefix, "BIN="+filepath.Join(t.TempDir(), "bin"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, f := range []string{
		"bin/jobd", "bin/jobctl",
		"lib/systemd/system/jobd.service", "lib/systemd/system/jobd-executor.service",
		"share/bash-completion/completions/jobctl", "share/zsh/site-functions/_jobctl",
		"share/fish/vendor_completions.d/jobctl.fish",
		"share/doc/jobd/jobd.example.yaml", "share/doc/jobd/jobs.example.yaml",
	} {
		if _, err := os.Stat(filepath.Join(prefix, f)); err != nil {
			t.Errorf("make install did not install %s: %v", f, err)
		}
	}
	unit, err := os.ReadFile(filepath.Join(prefix, "lib/systemd/system/jobd.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart="+prefix+"/bin/jobd serve") {
		t.Errorf("the installed unit runs the installed binary:\n%s", unit)
	}
}
