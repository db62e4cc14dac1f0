package testlib

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Children lists the live (not zombie) processes whose parent is pid, from /proc; the
// test is skipped where there is no /proc.
func Children(t testing.TB, pid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc")
	}
	parent := strconv.Itoa(pid)
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after the last ")"
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i > 0 {
			if f := strings.Fields(s[i+1:]); len(f) > 1 && f[1] == parent && f[0] != "Z" {
				out = append(out, n)
			}
		}
	}
	return out
}

// FakeGigECamera returns a function that starts Debian's arv-fake-gv-camera-0.8 on
// 127.0.0.1 (a GigE Vision camera speaking GVCP/GVSP) and returns it running; each
// one is killed when the test ends, or with the test binary. The test holds the
// machine-wide "gige" lock (Exclusive) for its whole run.
func FakeGigECamera(t testing.TB) (start func() *exec.Cmd) {
	t.Helper()
	fake := Tool(t, "arv-fake-gv-camera-0.8")
	Exclusive(t, "gige") // one fake camera on 127.0.0.1:3956 at a time
	return func() *exec.Cmd {
		cmd := exec.Command(fake, "-i", "127.0.0.1")
		DiesWithTest(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
}
