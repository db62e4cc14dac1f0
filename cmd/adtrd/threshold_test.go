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

// check refuses a threshold no score of the model can exceed (exit 2, one line with
// the key and its line) and warns about one under the good parts' scores (exit 0, the
// warning on stderr, "ok" saying so); eval and calibrate still run under either, as
// calibrate is how such a threshold is replaced.
func TestCheckThresholdsAgainstTheModel(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	root := demoMVTec(t)
	for _, tc := range []struct {
		name      string
		threshold string
		cmd       []string
		code      int
		out, errs string // in stdout and stderr
	}{
		// above the demo's int8 top, 31.875: every defect would pass
		{"check above the top", "40", []string{"check"}, 2, "", "line 8: threshold: 40: no score can exceed it: the model's scores reach 31.8750 at most"},
		// under every held-out good score: every part would be rejected
		{"check under the good", "5", []string{"check"}, 0, "ok, with 1 warning(s)", "adtrd check: warning: threshold: line 8: threshold: 5 is below every held-out good image's score"},
		// the metadata's own
		{"check suggested", "0", []string{"check"}, 0, ": ok\n", ""},
		// eval shows what such a threshold does, with the warning first
		{"eval above the top", "40", []string{"eval"}, 0, "", "adtrd eval: warning: bad threshold: line 8: threshold: 40: no score can exceed it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "line.yaml")
			os.WriteFile(cfg, []byte("# the line's config\nmodel:\n  path: "+testlib.Demo("adtr.tflite")+"\n  library: "+lib+
				"\ncapture:\n  replay:\n    path: "+testlib.Demo("frames")+"\nthreshold: "+tc.threshold+"\nhttp:\n  address: ''\n"), 0o644)
			args := append(append([]string(nil), tc.cmd...), "-c", cfg)
			if tc.cmd[0] == "eval" {
				args = append(args, root)
			}
			var out, errb bytes.Buffer
			code := realMain(context.Background(), args, &out, &errb)
			if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.errs) || tc.errs == "" && errb.Len() > 0 {
				t.Fatalf("exit %d (want %d)\nstdout %q (want %q)\nstderr %q (want %q)", code, tc.code, out.String(), tc.out, errb.String(), tc.errs)
			}
			if tc.code == 2 && strings.Count(strings.TrimSpace(errb.String()), "\n") != 0 {
				t.Fatalf("not one line: %q", errb.String())
			}
		})
	}
}
