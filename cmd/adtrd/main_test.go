package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/adtrd/adtrd/internal/testlib"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("treshold: 3\nfail_safe: maybe\n"), 0o644)
	var out, errb bytes.Buffer
	if code := realMain(context.Background(), []string{"check", "-c", bad}, &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	msg := strings.TrimSpace(errb.String())
	if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "line 1: treshold: unknown key") || !strings.Contains(msg, "line 2: fail_safe") {
		t.Fatalf("stderr %q", msg)
	}
	good := filepath.Join(testlib.Root(), "config", "example.yaml")
	out.Reset()
	if code := realMain(context.Background(), []string{"check", "-c", good}, &out, &errb); code != 0 || !strings.Contains(out.String(), "ok") {
		t.Fatalf("exit %d, %q", code, out.String())
	}
}

// The built-in demo, as `make run` runs it, from the repository root.
func TestRunDemo(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	cfg := filepath.Join(t.TempDir(), "demo.yaml")
	os.WriteFile(cfg, []byte("model:\n  path: "+testlib.Demo("adtr.tflite")+"\n  library: "+lib+"\ncapture:\n  replay:\n    path: "+testlib.Demo("frames")+"\nlog:\n  level: warn\n"), 0o644)
	var out, errb bytes.Buffer
	if code := realMain(context.Background(), []string{"run", "-c", cfg}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "summary: frames 16, rejects ") {
		t.Fatalf("stdout %q", out.String())
	}
}

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	for _, args := range [][]string{nil, {"fly"}, {"check"}} {
		if code := realMain(context.Background(), args, &out, &errb); code != 2 {
			t.Fatalf("%v: exit %d", args, code)
		}
	}
}
