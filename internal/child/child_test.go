package child_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/adtrd/adtrd/internal/child"
)

// sh starts /bin/sh -c script with a tail of n lines, collecting every line.
func sh(t *testing.T, script string, n int, stdin string) (*child.Process, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var lines []string
	opt := child.Options{Path: "/bin/sh", Args: []string{"-c", script}, Tail: n, Line: func(s string) {
		mu.Lock()
		lines = append(lines, s)
		mu.Unlock()
	}}
	if stdin != "" {
		opt.Stdin = strings.NewReader(stdin)
	}
	p, err := child.Start(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(0) })
	return p, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), lines...)
	}
}

// signalled says whether err is an exit by sig.
func signalled(err error, sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// What the child writes on stdout and stderr reaches Line in order, a line longer
// than MaxLine cut (and the rest drained, not read as the next line), and Tail keeps
// the last lines; stdin is the child's.
func TestOutputLinesAndTail(t *testing.T) {
	long := strconv.Itoa(child.MaxLine + 100)
	p, lines := sh(t, `read x; echo "got $x"; echo two >&2; head -c `+long+` /dev/zero | tr '\0' a; echo; echo three`, 2, "hello\n")
	if err := p.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := lines()
	if len(got) != 4 || got[0] != "got hello" || got[1] != "two" || len(got[2]) != child.MaxLine || got[3] != "three" {
		t.Fatalf("lines %d: %.60q", len(got), got)
	}
	if tail := p.Tail(); len(tail) != 2 || tail[1] != "three" {
		t.Fatalf("tail %.60q, want the last 2 lines", tail)
	}
}

// A child that runs past its time is killed with everything it forked (its process
// group), and Wait says so; a crash is the exit error's signal.
func TestWaitKillsAHangAndSaysACrash(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	p, _ := sh(t, `sleep 60 & echo $! > `+pidFile+`; wait`, 0, "")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.Wait(ctx)
	if !errors.Is(err, child.ErrKilled) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait: %v, want ErrKilled after the deadline", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Wait took %v", d)
	}
	b, _ := os.ReadFile(pidFile)
	grand, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	for deadline := time.Now().Add(5 * time.Second); grand > 0; time.Sleep(10 * time.Millisecond) {
		if syscall.Kill(grand, 0) != nil || zombie(grand) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the child's own child %d outlived the kill", grand)
		}
	}
	crash, _ := sh(t, `kill -SEGV $$`, 0, "")
	if err := crash.Wait(context.Background()); !signalled(err, syscall.SIGSEGV) {
		t.Fatalf("Wait: %v, want the SIGSEGV exit", err)
	}
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] == "Z"
}

// Stop interrupts first: a child that cleans up on SIGINT gets to (a camera hands
// itself back that way); one that ignores it is killed after the grace.
func TestStopInterruptsThenKills(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		sig          syscall.Signal // how the child ended
	}{
		// ends on its own when interrupted: exit 0 from the trap
		{"clean", `trap 'echo bye; exit 0' INT; echo up; while :; do sleep 0.05; done`, 0},
		// ignores SIGINT: killed after the grace
		{"deaf", `trap '' INT; echo up; while :; do sleep 0.05; done`, syscall.SIGKILL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, lines := sh(t, tc.script, 0, "")
			for deadline := time.Now().Add(10 * time.Second); len(lines()) == 0; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the child never started")
				}
			}
			err := p.Stop(500 * time.Millisecond)
			switch {
			case tc.sig == 0 && err != nil:
				t.Fatalf("Stop: %v, want the child's own exit 0", err)
			case tc.sig != 0 && (!signalled(err, tc.sig) || !errors.Is(err, child.ErrKilled)):
				t.Fatalf("Stop: %v, want ErrKilled and %v", err, tc.sig)
			}
			if err2 := p.Stop(0); err2 != err { // safe twice, the same answer
				t.Fatalf("second Stop: %v, first %v", err2, err)
			}
		})
	}
}
