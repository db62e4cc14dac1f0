package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/adtrd/adtrd/internal/testlib"
)

// With http.address in use, `adtrd run` does what http.required says: true, it exits
// at once with one line naming http.address; false (the default), it logs at error
// level that the operators' page is off and decides every part as usual.
func TestRunWithTheHTTPPortInUse(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	for _, tc := range []struct {
		name, required string // "": the key left out
		code           int
		stdout         string // in stdout
		stderr         string // in stderr
	}{
		// the default: the line runs; the page's absence is an error record
		{"default", "", 0, "summary: frames 16", `level=ERROR msg="operators' page off: http.address ` + addr + ` is in use"`},
		// said outright
		{"required false", "false", 0, "summary: frames 16", `level=ERROR msg="operators' page off: http.address ` + addr + ` is in use"`},
		// required: no part is decided, one line says why
		{"required", "true", 1, "", "adtrd run: operators' page: http.address " + addr + " is in use (http.required: true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "line.yaml")
			text := "model:\n  path: " + testlib.Demo("adtr.tflite") + "\n  library: " + lib + "\ncapture:\n  replay:\n    path: " + testlib.Demo("frames") +
				"\n    fps: 0\nlog:\n  level: warn\nhttp:\n  address: " + addr + "\n"
			if tc.required != "" {
				text += "  required: " + tc.required + "\n"
			}
			os.WriteFile(cfg, []byte(text), 0o644)
			var out, errb bytes.Buffer
			code := realMain(context.Background(), []string{"run", "-c", cfg}, &out, &errb)
			if code != tc.code || !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errb.String(), tc.stderr) {
				t.Fatalf("exit %d, stdout %q, stderr:\n%s\nwant %d, %q, %q", code, out.String(), errb.String(), tc.code, tc.stdout, tc.stderr)
			}
			if tc.code != 0 && (strings.Count(errb.String(), "\n") != 1 || strings.Contains(out.String(), "summary")) {
				t.Fatalf("a refused start printed more than its reason:\nstdout %q\nstderr %q", out.String(), errb.String())
			}
		})
	}
}
