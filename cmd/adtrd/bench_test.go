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

// --engines is checked whole before any engine runs: a bad item is a usage error
// (exit 2) naming it, and nothing is benched.
func TestBenchEnginesListCheckedFirst(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "bench.yaml")
	os.WriteFile(cfg, []byte("model:\n  path: "+testlib.Demo("adtr.tflite")+"\ncapture:\n  replay:\n    path: "+testlib.Demo("frames")+"\nhttp:\n  address: \"\"\n"), 0o644)
	for _, tc := range []struct {
		list, want string
	}{
		// an unknown engine after a good one
		{"tflite,foo", `"foo": want tflite, onnxruntime, litert`},
		// an empty item
		{"tflite,", `engine variant: "": want tflite`},
		// an accelerator LiteRT has not
		{"litert:npu", `unknown accelerator "npu"`},
		// the same engine twice
		{"tflite,tflite", `"tflite" given twice`},
		// an empty list
		{"", `engine variant: "": want tflite`},
	} {
		var out, errb bytes.Buffer
		code := realMain(context.Background(), []string{"bench", "-c", cfg, "-n", "10", "--engines", tc.list}, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), tc.want) || out.Len() != 0 || strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("--engines %q: exit %d, stdout %q, stderr %q; want 2, nothing run, one line with %q", tc.list, code, out.String(), errb.String(), tc.want)
		}
	}
}
