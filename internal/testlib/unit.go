package testlib

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Tool is the path of a Debian tool. When it is missing the test is skipped, saying
// why, unless ADTRD_REQUIRE_TOOLS is set (as `make test` does after installing them),
// when it fails.
func Tool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	missing(t, name+" missing: scripts/install-debs.sh installs it")
	return ""
}

// missing skips the test, saying why, or fails it under ADTRD_REQUIRE_TOOLS.
func missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("ADTRD_REQUIRE_TOOLS") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// VerifyUnit runs `systemd-analyze verify` on unit inside a root that has this
// machine's systemd units and an executable at /usr/bin/adtrd (adtrd itself where the
// caller has one). Only systemd < 253's warning that it does not know Type=notify-reload
// is allowed (the unit falls back to the Type=notify before it).
func VerifyUnit(t testing.TB, unit, binary string) {
	t.Helper()
	analyze := Tool(t, "systemd-analyze")
	root := t.TempDir()
	for _, d := range []string{"usr/bin", "bin", "lib/systemd"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	kill, err := os.ReadFile("/bin/kill") // ExecReload=
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "bin/kill"), kill, 0o755)
	if out, err := exec.Command("cp", "-a", "/lib/systemd/system", filepath.Join(root, "lib/systemd/")).CombinedOutput(); err != nil {
		t.Fatalf("copy units: %v %s", err, out)
	}
	b, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "usr/bin/adtrd"), b, 0o755)
	u, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "lib/systemd/system/adtrd.service"), u, 0o644)
	out, err := exec.Command(analyze, "verify", "--root="+root, "/lib/systemd/system/adtrd.service").CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" && !strings.HasSuffix(l, "Failed to parse service type, ignoring: notify-reload") {
			t.Fatalf("systemd-analyze verify warns: %s", l)
		}
	}
}

// Python is the toolkit's venv interpreter (training/.venv, made by `make venv`),
// for tests that compare the daemon with the toolkit. Missing, the test is skipped,
// or fails under ADTRD_REQUIRE_TOOLS (`make test-go` makes the venv first).
func Python(t testing.TB) string {
	t.Helper()
	p := filepath.Join(Root(), "training", ".venv", "bin", "python")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	missing(t, p+" missing: `make venv` makes it")
	return ""
}

// Missing skips the test for a missing tool or package, saying which, or fails it
// under ADTRD_REQUIRE_TOOLS.
func Missing(t testing.TB, msg string) {
	t.Helper()
	missing(t, msg)
}
