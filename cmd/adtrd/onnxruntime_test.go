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

// model.engine: onnxruntime from a config file: `check` and `run` open the demo's ONNX
// graph on ONNX Runtime through the daemon's own factories, a TensorRT provider this
// machine lacks is one warning and the CPU runs it, and the run decides every demo
// frame with no inference error.
func TestONNXRuntimeEngineFromTheConfig(t *testing.T) {
	lib := testlib.ONNXRuntimeLibrary(t)
	cfg := filepath.Join(t.TempDir(), "adtrd.yaml")
	os.WriteFile(cfg, []byte("model:\n  engine: onnxruntime\n  path: "+testlib.Demo("adtr.onnx")+"\n  threads: 1\n  onnxruntime:\n    library: "+lib+
		"\n    providers: [tensorrt, cpu]\ncapture:\n  replay:\n    path: "+testlib.Demo("frames")+"\n    fps: 0\n    labels: name\nlog:\n  level: warn\nhttp:\n  address: \"\"\n"), 0o644)
	var out, errb bytes.Buffer
	if code := realMain(context.Background(), []string{"check", "-c", cfg}, &out, &errb); code != 0 || !strings.Contains(out.String(), "ok, with 1 warning(s)") ||
		!strings.Contains(errb.String(), "the tensorrt provider cannot start") {
		t.Fatalf("check: exit %d\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := realMain(context.Background(), []string{"run", "-c", cfg}, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "summary: frames 16,") || !strings.Contains(out.String(), "inference errors 0") {
		t.Fatalf("run: exit %d\n%s%s", code, out.String(), errb.String())
	}
}
