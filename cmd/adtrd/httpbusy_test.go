package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// `adtrd check` looks at http.address as `adtrd run` would: in use by another program
// it warns that the page would be off, or fails with exit 1 under http.required (it
// said ok, and run then refused to start); held by the adtrd that runs this very
// config (checking the running line's config before a reload) it is fine; held by an
// adtrd running another config it warns, naming that config.
func TestCheckLooksAtTheHTTPPort(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	dir := t.TempDir()
	write := func(name, addr, required string) string {
		p := filepath.Join(dir, name)
		text := "model:\n  path: " + testlib.Demo("adtr.tflite") + "\n  library: " + lib + "\ncapture:\n  replay:\n    path: " + testlib.Demo("frames") +
			"\n    loop: true\nlog:\n  level: warn\nhttp:\n  address: " + addr + "\n  required: " + required + "\n"
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	check := func(cfg string) (int, string, string) {
		var out, errb bytes.Buffer
		code := realMain(context.Background(), []string{"check", "-c", cfg}, &out, &errb)
		return code, out.String(), errb.String()
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	other := taken.Addr().String()
	// another program on the port, the page not required: ok, with the warning
	code, out, errs := check(write("other.yaml", other, "false"))
	if code != 0 || !strings.Contains(out, "ok, with 1 warning(s)") || !strings.Contains(errs, "operators' page would be off: http.address "+other+" is in use (by another program)") {
		t.Fatalf("not required: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	// required: exit 1, one line
	code, out, errs = check(write("other-required.yaml", other, "true"))
	if code != 1 || out != "" || !strings.HasSuffix(errs, "http.address "+other+" is in use (by another program): `adtrd run` would not start (http.required: true; free the port, or set another http.address)\n") {
		t.Fatalf("required: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	taken.Close()

	// an adtrd running this config holds the port
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()
	running := write("line.yaml", addr, "true")
	// started as `adtrd run -c line.yaml` in its folder, checked from another folder:
	// the page names its config in full, so the check finds it is the same file
	t.Chdir(dir)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan int)
	go func() { ran <- realMain(ctx, []string{"run", "-c", "line.yaml"}, io.Discard, io.Discard) }()
	defer func() { cancel(); <-ran }()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if resp, err := http.Get("http://" + addr + "/api/status"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon's page never came up")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Chdir("/")
	if code, out, errs := check(running); code != 0 || !strings.HasSuffix(out, ": ok\n") || errs != "" {
		t.Fatalf("the running config: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs = check(write("next.yaml", addr, "false"))
	if code != 0 || !strings.Contains(errs, "is in use (by another adtrd, running "+running+")") {
		t.Fatalf("another config: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}
