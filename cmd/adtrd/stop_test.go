package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/adtrd/adtrd/app"
	"github.com/adtrd/adtrd/internal/testlib"
)

// timeoutStopSec is the shipped unit's TimeoutStopSec: systemd kills a stop that
// takes longer, outputs as they are.
func timeoutStopSec(t *testing.T) time.Duration {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "systemd", "adtrd.service"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^TimeoutStopSec=(\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("the unit sets no TimeoutStopSec")
	}
	d, err := time.ParseDuration(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// The stop budget leaves the unit's TimeoutStopSec room for what follows it (closing
// the camera, the page and the engine, and exiting).
func TestStopBudgetFitsTheUnit(t *testing.T) {
	if limit := timeoutStopSec(t); app.StopBudget+3*time.Second > limit {
		t.Fatalf("stop budget %v leaves less than 3 s of the unit's TimeoutStopSec=%v", app.StopBudget, limit)
	}
}

// A SIGTERM ends the run inside the unit's TimeoutStopSec with exit 0, the summary
// printed and every output inactive, whatever is in flight or queued (field cases 17
// and 25): a stop is no failure.
func TestStopFitsTimeoutStopSec(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	limit := timeoutStopSec(t)
	for _, tc := range []struct {
		name                string
		threads, queue, fps int
		delay, pulse        string
		want                []string // in stdout
	}{
		// parts due 50 s after their frame, pulses of 10 s: none can be ejected
		// within the budget; they are named, not waited for
		{"parts due after the budget", 2, 2, 10, "50s", "10s",
			[]string{"summary: frames", "in flight at the stop", "not ejected (the stop reached its budget before their reject time): "}},
		// a queue of 64 a replay at 200 fps keeps full, one inference thread, parts
		// due 20 s on: the queue is not drained into the stop
		{"full queue", 1, 64, 200, "20s", "10ms", []string{"summary: frames", "in flight at the stop"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			edges := filepath.Join(dir, "edges.csv")
			cfg := filepath.Join(dir, "adtrd.yaml")
			os.WriteFile(cfg, []byte(fmt.Sprintf("model:\n  path: %s\n  library: %s\n  threads: %d\ncapture:\n  queue: %d\n  replay:\n    path: %s\n    fps: %d\n    loop: true\n"+
				"output:\n  sim_csv: %s\n  reject:\n    delay: %s\n    pulse: %s\ntracking:\n  in_flight: 4096\nhttp:\n  address: ''\nlog:\n  level: info\n",
				testlib.Demo("adtr.tflite"), lib, tc.threads, tc.queue, testlib.Demo("frames"), tc.fps, edges, tc.delay, tc.pulse)), 0o644)
			cmd := testDaemon()
			cmd.Env = append(os.Environ(), "ADTRD_TEST_MAIN=1", "ADTRD_TEST_ARGS=run -c "+cfg)
			testlib.DiesWithTest(cmd)
			stderr, _ := cmd.StderrPipe()
			var stdout bytes.Buffer
			cmd.Stdout = &stdout
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(stderr)
			var log strings.Builder
			for n := 0; n < 3 && sc.Scan(); { // three decisions: parts in flight, the queue filling
				log.WriteString(sc.Text() + "\n")
				if strings.Contains(sc.Text(), "msg=frame") {
					n++
				}
			}
			go func() {
				for sc.Scan() {
				}
			}()
			start := time.Now()
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("exit: %v\nstdout %s\nstderr %s", err, stdout.String(), log.String())
				}
			case <-time.After(2 * limit):
				cmd.Process.Kill()
				t.Fatal("did not stop on SIGTERM")
			}
			if took := time.Since(start); took > limit {
				t.Fatalf("the stop took %v, past the unit's TimeoutStopSec=%v", took, limit)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout.String(), w) {
					t.Fatalf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			f, err := os.Open(edges)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rows, err := csv.NewReader(f).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			last := map[string]string{}
			for _, r := range rows[1:] {
				last[r[1]] = r[2]
			}
			for _, pin := range []string{"reject", "alarm", "ready"} {
				if last[pin] != "Low" {
					t.Errorf("%s ended %q, want Low (inactive)", pin, last[pin])
				}
			}
		})
	}
}

// A paced replay far faster than inference into a queue of one: most frames are
// skipped (no part, no pulse, exit 0), and the run's account says the line could not
// keep up and points at bench (make run on a busy machine printed "false rejects 8"
// and nothing else).
func TestSkippedFramesSayTheLineCouldNotKeepUp(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	cfg := filepath.Join(t.TempDir(), "fast.yaml")
	os.WriteFile(cfg, []byte("model:\n  path: "+testlib.Demo("adtr.tflite")+"\n  library: "+lib+"\ncapture:\n  queue: 1\n  replay:\n    path: "+testlib.Demo("frames")+
		"\n    fps: 1000\n    labels: name\nhttp:\n  address: ''\nlog:\n  level: warn\n"), 0o644)
	var out, errb bytes.Buffer
	if code := realMain(context.Background(), []string{"run", "-c", cfg}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	o := out.String()
	// (That skipped frames are no parts, never pulsed, is TestFasterCameraSkipsFramesWithoutParts',
	// on a clock no load can make late.)
	if !regexp.MustCompile(`skipped [1-9]`).MatchString(o) || !regexp.MustCompile(`warning: the line could not keep up: .*[1-9][0-9]* of 16 frames were skipped`).MatchString(o) ||
		!strings.Contains(o, "`adtrd bench -c CONFIG`") {
		t.Fatalf("stdout %q", o)
	}
}
