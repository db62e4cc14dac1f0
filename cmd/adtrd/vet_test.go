package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/adtrd/adtrd/internal/testlib"
)

// A reload to a graph that crashes the TFLite 2.9 library (engine/vet/testdata,
// written by scripts/gen-vet-graphs.py) is refused with one line saying so, and the
// running daemon goes on deciding parts on its generation: the crash was the vetting
// child's. The same reload without vetting would have ended the daemon.
func TestReloadRefusesAModelThatCrashesTheRuntime(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	dir := t.TempDir()
	// the crashing graph with metadata that passes every check made before the runtime
	// loads it: the demo's, with the crashing graph's sha256
	testlib.WithDemoMetadata(t, crashGraph(), dir)
	cfg := filepath.Join(dir, "adtrd.yaml")
	body := func(model string) []byte {
		return []byte("model:\n  path: " + model + "\n  library: " + lib + "\n  threads: 1" +
			"\nthreshold: 10.5\ncapture:\n  replay:\n    path: " + testlib.Demo("frames") + "\n    loop: true\n    fps: 10\n" +
			"log:\n  level: debug\n")
	}
	os.WriteFile(cfg, body(testlib.Demo("adtr.tflite")), 0o644)
	cmd, expect := runDaemon(t, cfg)
	expect("a decision", 20*time.Second, "msg=frame", "gen=1")
	tmp := cfg + ".tmp"
	os.WriteFile(tmp, body(filepath.Join(dir, "crash.tflite")), 0o644)
	os.Rename(tmp, cfg)
	l := expect("the crashing model refused", 60*time.Second, "reload failed", "generation=1")
	if !strings.Contains(l, "crash.tflite: the tflite engine crashed loading it") || !strings.Contains(l, "SIGSEGV") || !strings.Contains(l, "refused in a vetting child") {
		t.Fatalf("the refusal does not say the runtime crashed in the child:\n%s", l)
	}
	expect("a decision after the refusal", 20*time.Second, "msg=frame", "gen=1")
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the daemon after the refused model: %v", err)
	}
}

// The line tools load a model in a vetting child first too: `adtrd check` (and eval,
// calibrate, bench) on a graph that crashes the runtime says so in one line and exits
// 2, where it printed Go's crash dump; a hang ends at the limit the same way (not
// waited for here: engine/vet's test kills one at 2 s).
func TestCheckVetsTheModel(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	dir := t.TempDir()
	testlib.WithDemoMetadata(t, crashGraph(), dir)
	cfg := filepath.Join(dir, "adtrd.yaml")
	os.WriteFile(cfg, []byte("model:\n  path: crash.tflite\n  library: "+lib+"\nhttp:\n  address: ''\n"), 0o644)
	var out, errb bytes.Buffer
	code := realMain(context.Background(), []string{"check", "-c", cfg}, &out, &errb)
	msg := strings.TrimSpace(errb.String())
	if code != 2 || strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "crashed loading it") || !strings.Contains(msg, "SIGSEGV") || !strings.Contains(msg, "refused in a vetting child") {
		t.Fatalf("check: exit %d\n%s%s", code, out.String(), errb.String())
	}
}

// crashGraph is the graph that crashes TFLite 2.9 on its first Invoke
// (scripts/gen-vet-graphs.py).
func crashGraph() string {
	return filepath.Join(testlib.Root(), "engine", "vet", "testdata", "crash.tflite")
}
