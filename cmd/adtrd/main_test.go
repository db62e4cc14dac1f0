package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/adtrd/adtrd/app"
	"github.com/adtrd/adtrd/engine/vet"
	"github.com/adtrd/adtrd/evaluate"
	"github.com/adtrd/adtrd/internal/testlib"
)

// TestMain lets a test run this binary as the daemon itself (for real signals).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == vet.Command {
		// the daemon's vetting child, started by os.Executable() (this test binary,
		// also when the daemon runs in-process through realMain): run as adtrd would
		os.Args = append([]string{"adtrd"}, os.Args[1:]...)
		main()
	}
	if os.Getenv("ADTRD_TEST_MAIN") == "1" {
		os.Args = append([]string{"adtrd"}, strings.Fields(os.Getenv("ADTRD_TEST_ARGS"))...)
		main()
	}
	os.Exit(m.Run())
}

// A real SIGTERM or SIGINT mid-run, while pulses are being given: the daemon exits 0
// and every output (simulated: there is no GPIO chip here) ends inactive.
func TestSignalLeavesOutputsInactive(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			edges := filepath.Join(dir, "edges.csv")
			cfg := filepath.Join(dir, "adtrd.yaml")
			os.WriteFile(cfg, []byte("model:\n  path: "+testlib.Demo("adtr.tflite")+"\n  library: "+lib+
				"\ncapture:\n  replay:\n    path: "+testlib.Demo("frames")+"\n    loop: true\n    fps: 20\n"+
				"output:\n  sim_csv: "+edges+"\n  reject:\n    pulse: 30ms\n    delay: 40ms\n  heartbeat:\n    period: 25ms\n"+
				"fail_safe: reject\nlog:\n  level: info\n"), 0o644)
			cmd := testDaemon()
			cmd.Env = append(os.Environ(), "ADTRD_TEST_MAIN=1", "ADTRD_TEST_ARGS=run -c "+cfg)
			stderr, _ := cmd.StderrPipe()
			var stdout bytes.Buffer
			cmd.Stdout = &stdout
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Wait for a reject decision, so a pulse is likely on or scheduled.
			sc := bufio.NewScanner(stderr)
			rejects := 0
			for sc.Scan() && rejects < 3 {
				if strings.Contains(sc.Text(), "decision=reject") {
					rejects++
				}
			}
			cmd.Process.Signal(sig)
			go func() {
				for sc.Scan() {
				}
			}()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("exit: %v\n%s", err, stdout.String())
				}
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				t.Fatal("did not stop on the signal")
			}
			if !strings.Contains(stdout.String(), "summary: frames") {
				t.Fatalf("stdout %q", stdout.String())
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
			highs := 0
			for _, r := range rows[1:] {
				last[r[1]] = r[2]
				if r[1] == "reject" && r[2] == "High" {
					highs++
				}
			}
			if highs == 0 {
				t.Fatalf("no reject pulse recorded: %v", rows)
			}
			for _, pin := range []string{"reject", "alarm", "ready", "heartbeat"} {
				if last[pin] != "Low" {
					t.Errorf("%s ended %q, want Low (inactive)", pin, last[pin])
				}
			}
		})
	}
}

// A running daemon reloads on a file edit and on SIGHUP (what `systemctl reload`
// sends), and keeps running on a broken edit.
func TestReloadWhileRunning(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "adtrd.yaml")
	body := func(threshold string) []byte {
		// threads: 1: XNNPACK's two threads collapse (to 2 frames/s here) when another
		// process keeps a core busy, and this test waits on frames.
		return []byte("model:\n  path: " + testlib.Demo("adtr.tflite") + "\n  library: " + lib + "\n  threads: 1" +
			"\nthreshold: " + threshold + "\ncapture:\n  replay:\n    path: " + testlib.Demo("frames") + "\n    loop: true\n    fps: 10\n" +
			"log:\n  level: debug\n")
	}
	os.WriteFile(cfg, body("10.5"), 0o644)
	cmd, expect := runDaemon(t, cfg)
	const d = 10 * time.Second
	expect("first frame", d, "msg=frame", "gen=1")
	tmp := cfg + ".tmp"
	os.WriteFile(tmp, body("11.25"), 0o644)
	os.Rename(tmp, cfg) // an editor's atomic save
	expect("reload on the file event", d, "msg=reloaded", "generation=2", "threshold=11.25")
	expect("a frame on generation 2", d, "msg=frame", "threshold=11.25", "gen=2")
	os.WriteFile(cfg, []byte("threshold: [\n"), 0o644)
	expect("the broken edit refused", d, "reload failed", "generation=2", "line 1: (syntax)")
	expect("still running generation 2", d, "msg=frame", "gen=2")
	os.WriteFile(cfg, body("11.25"), 0o644) // back as it was: a no-op
	expect("unchanged", d, "reload: nothing changed")
	cmd.Process.Signal(syscall.SIGHUP)
	expect("SIGHUP reload", d, "reload: nothing changed", "reason=SIGHUP")
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

// runDaemon runs `adtrd run -c cfg` as a process of its own (this test binary, through
// TestMain), killed when the test ends. expect waits up to d for a line of its stderr
// that holds every one of subs and returns it; the daemon ending first, or d passing,
// fails the test naming what.
func runDaemon(t *testing.T, cfg string) (*exec.Cmd, func(what string, d time.Duration, subs ...string) string) {
	t.Helper()
	cmd := testDaemon()
	cmd.Env = append(os.Environ(), "ADTRD_TEST_MAIN=1", "ADTRD_TEST_ARGS=run -c "+cfg)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	lines := make(chan string, 4096)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return cmd, func(what string, d time.Duration, subs ...string) string {
		t.Helper()
		timeout := time.After(d)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("daemon exited before %s", what)
				}
				hit := true
				for _, s := range subs {
					hit = hit && strings.Contains(l, s)
				}
				if hit {
					return l
				}
			case <-timeout:
				t.Fatalf("no %s within %v", what, d)
			}
		}
	}
}

// Under systemd: READY=1 comes with a status that already has a score (so it was sent
// after the first frame was scored), WATCHDOG=1 pings flow while frames do, and
// STOPPING=1 comes on SIGTERM. A real NOTIFY_SOCKET; JOURNAL_STREAM set, so the log
// lines carry no timestamp of their own (journald adds one).
func TestSystemdNotifications(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cfg := filepath.Join(dir, "adtrd.yaml")
	os.WriteFile(cfg, []byte("model:\n  path: "+testlib.Demo("adtr.tflite")+"\n  library: "+lib+
		"\ncapture:\n  replay:\n    path: "+testlib.Demo("frames")+"\n    loop: true\n    fps: 20\n"), 0o644)
	cmd := testDaemon()
	cmd.Env = append(os.Environ(), "ADTRD_TEST_MAIN=1", "ADTRD_TEST_ARGS=run -c "+cfg,
		"NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=200000", "JOURNAL_STREAM=8:1234")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var msgs []string
	buf := make([]byte, 4096)
	pings := 0
	for pings < 5 {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("after %q: %v\n%s", msgs, err, stderr.String())
		}
		m := string(buf[:n])
		msgs = append(msgs, m)
		if m == "WATCHDOG=1" {
			pings++
		}
	}
	ready := -1
	for i, m := range msgs {
		if strings.HasPrefix(m, "READY=1\n") {
			ready = i
			if !strings.Contains(m, "STATUS=generation 1, model "+testlib.LoadGolden(t).SHA256[:12]) || !strings.Contains(m, "last score") || strings.Contains(m, "last score 0.000") {
				t.Fatalf("READY without a scored frame: %q", m)
			}
		}
	}
	if ready < 0 {
		t.Fatalf("no READY=1 in %q", msgs)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	for {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no STOPPING=1: %v", err)
		}
		if string(buf[:n]) == "STOPPING=1" {
			break
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if strings.HasPrefix(l, "time=") {
			t.Fatalf("a timestamp under journald: %q", l)
		}
	}
	if !strings.Contains(stderr.String(), "level=INFO msg=frame") {
		t.Fatalf("stderr:\n%s", stderr.String())
	}
}

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
	// The documented example, with the library this test has (check loads the model).
	example, err := os.ReadFile(filepath.Join(testlib.Root(), "config", "example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(example), "../models/", filepath.Join(testlib.Root(), "models")+"/")
	text = strings.Replace(text, `library: ""`, "library: "+testlib.TFLiteLibrary(t), 1)
	good := filepath.Join(dir, "example.yaml")
	os.WriteFile(good, []byte(text), 0o644)
	out.Reset()
	errb.Reset()
	if code := realMain(context.Background(), []string{"check", "-c", good}, &out, &errb); code != 0 || !strings.Contains(out.String(), "ok") {
		t.Fatalf("exit %d, %q %q", code, out.String(), errb.String())
	}
}

// testDaemon is this test binary run as adtrd (TestMain, ADTRD_TEST_MAIN): a daemon
// process. A test that dies takes it along (Pdeathsig): a timeout's panic runs no
// defers, and an orphaned daemon would hold 127.0.0.1:8080, a camera and a core for
// the tests after it (seen: a -race run's orphan failed TestCheckFindsGPIOLines).
func testDaemon() *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// The built-in demo, as `make run` runs it, from the repository root.
func TestRunDemo(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	cfg := filepath.Join(t.TempDir(), "demo.yaml")
	os.WriteFile(cfg, []byte("model:\n  path: "+testlib.Demo("adtr.tflite")+"\n  library: "+lib+"\ncapture:\n  replay:\n    path: "+testlib.Demo("frames")+"\n    fps: 0\nlog:\n  level: warn\n"), 0o644)
	var out, errb bytes.Buffer
	if code := realMain(context.Background(), []string{"run", "-c", cfg}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "summary: frames 16, rejects ") {
		t.Fatalf("stdout %q", out.String())
	}
}

// check also finds a gpiochip config's lines on this machine; here there is no chip.
func TestCheckFindsGPIOLines(t *testing.T) {
	if m, _ := filepath.Glob("/dev/gpiochip*"); len(m) > 0 {
		t.Skip("this machine has GPIO chips; the no-chip message cannot be shown")
	}
	cfg := filepath.Join(t.TempDir(), "line.yaml")
	os.WriteFile(cfg, []byte("model:\n  path: "+testlib.Demo("adtr.tflite")+"\ncapture:\n  replay:\n    path: "+testlib.Demo("frames")+
		"\noutput:\n  backend: gpiochip\n  reject:\n    line: PQ.05\nhttp:\n  address: \"\"\n"), 0o644)
	var out, errb bytes.Buffer
	if code := realMain(context.Background(), []string{"check", "-c", cfg}, &out, &errb); code != 2 {
		t.Fatalf("exit %d", code)
	}
	if msg := errb.String(); strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "no GPIO character devices") {
		t.Fatalf("stderr %q", msg)
	}
}

// What a new user types first: help and version in every spelling exit 0 on stdout; a
// subcommand's -h lists its own flags only; unknown commands, bad flags and arguments
// left over are one-line errors (exit 2) that say what was wrong, nothing runs.
func TestUsage(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("model:\n  path: "+testlib.Demo("adtr.tflite")+"\n"), 0o644)
	for _, tc := range []struct {
		args    []string
		code    int
		stdout  string // a substring stdout must hold ("" = stdout empty)
		stderr  string // a substring stderr must hold ("" = stderr empty)
		without string // a substring stdout must not hold
	}{
		{nil, 2, "", "usage:", ""},                                                                       // no command: the usage, as an error
		{[]string{"fly"}, 2, "", `unknown command "fly"`, ""},                                            // a typo
		{[]string{"help"}, 0, "adtrd check -c FILE", "", ""},                                             // help as a command
		{[]string{"-h"}, 0, "config/example.yaml", "", ""},                                               // the usage points at the keys
		{[]string{"--help"}, 0, "adtrd run", "", ""},                                                     // GNU spelling
		{[]string{"--version"}, 0, "adtrd ", "", ""},                                                     // like `version`
		{[]string{"version"}, 0, "adtrd ", "", ""},                                                       // the command
		{[]string{"check", "--help"}, 0, "-c string", "", "-loop"},                                       // check's flags only
		{[]string{"run", "-h"}, 0, "-loop", "", ""},                                                      // run's flags
		{[]string{"preprocess", "-h"}, 0, "-size", "", ""},                                               // preprocess's flags
		{[]string{"check"}, 2, "", "-c FILE is required", ""},                                            // nothing to check
		{[]string{"check", "extra", "-c", cfg}, 2, "", `unexpected argument "extra"`, ""},                // flags after a stray word are not lost silently
		{[]string{"check", "-c", cfg, "extra", "junk"}, 2, "", `unexpected argument "extra"`, ""},        // extra words after the config
		{[]string{"run", "-c", cfg, "now"}, 2, "", `unexpected argument "now"`, ""},                      // run does not start on a typo
		{[]string{"check", "--loop", "-c", cfg}, 2, "", "flag provided but not defined: -loop", ""},      // check has no --loop
		{[]string{"eval", "-h"}, 0, "-json", "", "-loop"},                                                // eval's flags
		{[]string{"eval", dir}, 2, "", "-c FILE is required", ""},                                        // no config
		{[]string{"eval", "-c", cfg}, 2, "", "no DIR", ""},                                               // no DIR: the config path is -c's, not DIR
		{[]string{"eval", "-c", cfg, "/nonexistent/dir"}, 2, "", "/nonexistent/dir: no such folder", ""}, // DIR is missing
		{[]string{"eval", "-c", cfg, dir}, 2, "", "no good/ folder", ""},                                 // DIR is not an MVTec layout
	} {
		var out, errb bytes.Buffer
		code := realMain(context.Background(), tc.args, &out, &errb)
		if code != tc.code {
			t.Errorf("%q: exit %d, want %d (stderr %q)", tc.args, code, tc.code, errb.String())
		}
		for _, c := range []struct {
			name, got, want string
		}{{"stdout", out.String(), tc.stdout}, {"stderr", errb.String(), tc.stderr}} {
			if c.want == "" && c.got != "" || !strings.Contains(c.got, c.want) {
				t.Errorf("%q: %s %q, want it to hold %q", tc.args, c.name, c.got, c.want)
			}
		}
		if tc.without != "" && strings.Contains(out.String(), tc.without) {
			t.Errorf("%q: stdout %q holds %q", tc.args, out.String(), tc.without)
		}
		if tc.code == 2 && len(tc.args) > 0 && strings.Count(errb.String(), "\n") != 1 && tc.args[0] != "fly" {
			t.Errorf("%q: stderr %q is not one line", tc.args, errb.String())
		}
	}
}

// `adtrd preprocess` writes the daemon's model input bytes for the toolkit (--adtrd):
// the corpus's bytes for a PNG, and one-line errors with exit 2 for usage and 1 for a
// file it cannot read.
func TestPreprocessCommand(t *testing.T) {
	corpus := filepath.Join(testlib.Root(), "capture", "testdata", "preprocess")
	want, err := os.ReadFile(filepath.Join(corpus, "rgb16-40x30.png.resize.rgb"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		rc     int
		stdout []byte
		err    string
	}{
		// a 16-bit PNG shrunk to 16x16: the toolkit's bytes
		{"png", []string{"--size", "16", filepath.Join(corpus, "rgb16-40x30.png")}, 0, want, ""},
		// twice: the bytes of each file, one after the other
		{"two files", []string{"--size", "16", filepath.Join(corpus, "rgb16-40x30.png"), filepath.Join(corpus, "rgb16-40x30.png")}, 0, append(append([]byte(nil), want...), want...), ""},
		// not a number
		{"bad size", []string{"--size", "abc", "x.png"}, 2, nil, `invalid value "abc"`},
		// out of range
		{"size 0", []string{"--size", "0", "x.png"}, 2, nil, "--size 0: want 1..4096"},
		// unknown fit
		{"bad fit", []string{"--size", "16", "--fit", "zoom", "x.png"}, 2, nil, `--fit "zoom"`},
		// a malformed PNG from the corpus, refused by name
		{"malformed", []string{"--size", "16", filepath.Join(corpus, "bad-missing-rows-40x30.png")}, 1, nil, "bad-missing-rows-40x30.png: not a readable image"},
		// a directory
		{"directory", []string{"--size", "16", corpus}, 1, nil, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			rc := realMain(context.Background(), append([]string{"preprocess"}, tc.args...), &out, &errb)
			if rc != tc.rc || !bytes.Equal(out.Bytes(), tc.stdout) && tc.rc == 0 || !strings.Contains(errb.String(), tc.err) {
				t.Fatalf("rc %d (want %d), %d bytes out, stderr %q (want %q)", rc, tc.rc, out.Len(), errb.String(), tc.err)
			}
			if tc.rc != 0 && strings.Count(strings.TrimSpace(errb.String()), "\n") != 0 {
				t.Fatalf("more than one line: %q", errb.String())
			}
		})
	}
}

// With log.format: json every stderr line is a JSON record, TFLite's own included
// (field case 14): the library prints "Created TensorFlow Lite XNNPACK delegate" on
// stderr itself, and for a model it cannot read, "The model is not a valid Flatbuffer
// buffer" before any error reporter exists. Run as a child process: TFLite prints its
// XNNPACK line once per process.
func TestTFLiteLinesGoThroughTheLogger(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	dir := t.TempDir()
	random := filepath.Join(dir, "random.tflite")
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(i*7 + i/13)
	}
	os.WriteFile(random, junk, 0o644)
	sum := sha256.Sum256(junk)
	meta, _ := os.ReadFile(testlib.Demo("adtr.tflite.json"))
	var m map[string]any
	json.Unmarshal(meta, &m)
	m["sha256"] = hex.EncodeToString(sum[:])
	meta, _ = json.Marshal(m)
	os.WriteFile(random+".json", meta, 0o644)
	for _, tc := range []struct {
		name, model string
		code        int
		want        string // in stderr
	}{
		// the demo: TFLite's XNNPACK line as a record of its own
		{"demo", testlib.Demo("adtr.tflite"), 0, `"msg":"tflite: Created TensorFlow Lite XNNPACK delegate for CPU."`},
		// an unreadable model: one line, with TFLite's reason in it
		{"random", random, 1, "not a TFLite model the library can read (The model is not a valid Flatbuffer buffer)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(dir, tc.name+".yaml")
			os.WriteFile(cfg, []byte("model:\n  path: "+tc.model+"\n  library: "+lib+"\ncapture:\n  replay:\n    path: "+testlib.Demo("frames")+
				"\n    fps: 0\nlog:\n  format: json\n"), 0o644)
			cmd := testDaemon()
			cmd.Env = append(os.Environ(), "ADTRD_TEST_MAIN=1", "ADTRD_TEST_ARGS=run -c "+cfg)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != tc.code {
				t.Fatalf("exit %d (%v), want %d\n%s", code, err, tc.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("stderr lacks %q:\n%s", tc.want, stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if tc.code != 0 && (len(lines) != 1 || strings.Contains(lines[0], "no message from TFLite")) {
				t.Fatalf("want one record with TFLite's reason, got:\n%s", stderr.String())
			}
			for _, l := range lines {
				if !json.Valid([]byte(l)) {
					t.Fatalf("stderr line is not JSON: %q", l)
				}
			}
		})
	}
}

// `adtrd eval` on the demo frames laid out as MVTec AD gives the toolkit's numbers:
// image, pixel and per-kind AUROC as `python -m adtr eval --c-library` computes them
// (its functions, unrounded) to 1e-6, and its image AUROC is scikit-learn's on its own
// scores. The confusion matches the demo's decisions at the metadata's threshold.
func TestEvalAgreesWithTheToolkit(t *testing.T) {
	lib, py := testlib.TFLiteLibrary(t), testlib.Python(t)
	root := demoMVTec(t)
	cfg := filepath.Join(t.TempDir(), "eval.yaml")
	os.WriteFile(cfg, []byte("model:\n  path: "+testlib.Demo("adtr.tflite")+"\n  library: "+lib+"\ncapture:\n  replay:\n    path: "+root+"\n"), 0o644)
	var out, errb bytes.Buffer
	if code := realMain(context.Background(), []string{"eval", "-c", cfg, "--json", root}, &out, &errb); code != 0 {
		t.Fatalf("eval: exit %d: %s", code, errb.String())
	}
	repFile := filepath.Join(t.TempDir(), "report.json")
	os.WriteFile(repFile, out.Bytes(), 0o644)
	var got struct {
		Good, Defective int
		ImageAUROC      float64            `json:"image_auroc"`
		PixelAUROC      float64            `json:"pixel_auroc"`
		PerKind         map[string]float64 `json:"per_kind_image_auroc"`
		Confusion       evaluate.Confusion
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("eval --json: %v\n%s", err, out.String())
	}
	// one naming style, the golden key set (evaluate.TestReportJSONKeys)
	keys, err := evaluate.ReportKeys(out.Bytes())
	golden, _ := os.ReadFile(filepath.Join(testlib.Root(), "evaluate", "testdata", "report-keys.golden"))
	if err != nil || strings.Join(keys, "\n")+"\n" != string(golden) {
		t.Errorf("eval --json keys (%v):\n%s\nwant evaluate/testdata/report-keys.golden:\n%s", err, strings.Join(keys, "\n"), golden)
	}
	script := `import json, sys
import numpy as np
from sklearn.metrics import roc_auc_score
from adtr import evaluate
from adtr.data import Dataset
from adtr.tflite_c import CInterpreter
rep = json.load(open(sys.argv[1]))
meta = json.load(open(sys.argv[3] + ".json"))
split = Dataset(sys.argv[2]).test(int(meta["input"]["width"]))
with CInterpreter(sys.argv[3], sys.argv[4]) as it:
    scale, zero = it.output_quant
    maps = np.stack([(it.run(im)[0].astype(np.float32) - zero) * scale for im in split.images])
r = evaluate.evaluate_maps(maps, split, int(meta["pool_kernel"]))
print(json.dumps({"image": r.image_auroc, "pixel": r.pixel_auroc, "per_kind": r.per_kind,
    "sklearn_image": roc_auc_score([s["kind"] != "good" for s in rep["scores"]], [s["score"] for s in rep["scores"]])}))`
	cmd := exec.Command(py, "-c", script, repFile, root, testlib.Demo("adtr.tflite"), lib)
	cmd.Dir = filepath.Join(testlib.Root(), "training")
	var perr bytes.Buffer
	cmd.Stderr = &perr
	pyOut, err := cmd.Output()
	if err != nil {
		t.Fatalf("toolkit: %v\n%s", err, perr.String())
	}
	var want struct {
		Image, Pixel, SklearnImage float64            `json:"-"`
		PerKind                    map[string]float64 `json:"per_kind"`
	}
	var raw map[string]any
	json.Unmarshal(pyOut, &raw)
	json.Unmarshal(pyOut, &want)
	want.Image, want.Pixel, want.SklearnImage = raw["image"].(float64), raw["pixel"].(float64), raw["sklearn_image"].(float64)
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"image AUROC", got.ImageAUROC, want.Image}, {"pixel AUROC", got.PixelAUROC, want.Pixel}, {"image AUROC vs scikit-learn", got.ImageAUROC, want.SklearnImage}} {
		if math.Abs(c.got-c.want) > 1e-6 {
			t.Errorf("%s: adtrd %.8f, toolkit %.8f", c.name, c.got, c.want)
		}
	}
	if len(got.PerKind) != len(want.PerKind) {
		t.Errorf("kinds: adtrd %v, toolkit %v", got.PerKind, want.PerKind)
	}
	for k, v := range want.PerKind {
		if math.Abs(got.PerKind[k]-v) > 1e-6 {
			t.Errorf("%s: adtrd %.8f, toolkit %.8f", k, got.PerKind[k], v)
		}
	}
	// the demo: all 8 defects rejected, all 8 good parts passed at the metadata's threshold
	if c := got.Confusion; got.Good != 8 || got.Defective != 8 || c.TruePositive != 8 || c.TrueNegative != 8 {
		t.Errorf("confusion %+v for %d good, %d defective", c, got.Good, got.Defective)
	}
	t.Logf("adtrd eval: image %.6f, pixel %.6f; toolkit: %.6f, %.6f", got.ImageAUROC, got.PixelAUROC, want.Image, want.Pixel)
}

// demoMVTec lays the demo frames out as MVTec AD: test/good, test/<kind> with masks in
// ground_truth/<kind>, and one train/good image (the toolkit's Dataset wants one).
func demoMVTec(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "demo")
	frames, _ := filepath.Glob(testlib.Demo("frames", "*.png"))
	for _, f := range frames {
		b := strings.TrimSuffix(filepath.Base(f), ".png")
		_, kind, _ := strings.Cut(b, "_")
		dst := filepath.Join(root, "test", kind, b+".png")
		os.MkdirAll(filepath.Dir(dst), 0o755)
		data, _ := os.ReadFile(f)
		os.WriteFile(dst, data, 0o644)
		if kind != "good" {
			mask, _ := os.ReadFile(testlib.Demo("frames", "masks", b+"_mask.png"))
			os.MkdirAll(filepath.Join(root, "ground_truth", kind), 0o755)
			os.WriteFile(filepath.Join(root, "ground_truth", kind, b+"_mask.png"), mask, 0o644)
		}
	}
	os.MkdirAll(filepath.Join(root, "train", "good"), 0o755)
	good, _ := os.ReadFile(testlib.Demo("frames", "000_good.png"))
	os.WriteFile(filepath.Join(root, "train", "good", "000.png"), good, 0o644)
	return root
}

// calibrate on the demo's labelled frames proposes thresholds that separate them,
// writes the chosen one into the config (which the daemon then accepts), and says
// that 8 good images cannot bound a false-reject rate of 0.001.
func TestCalibrateWritesAThresholdTheDaemonUses(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	root := demoMVTec(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "line.yaml")
	os.WriteFile(cfg, []byte("# the line's config\nmodel:\n  path: "+testlib.Demo("adtr.tflite")+"\n  library: "+lib+
		"\ncapture:\n  replay:\n    path: "+root+"\nthreshold: 30 # too high: escapes\n"), 0o644)
	png := filepath.Join(dir, "scores.png")
	var out, errb bytes.Buffer
	// 9 good images cannot vouch for 0.001: --write is refused, the file untouched
	before, _ := os.ReadFile(cfg)
	if code := realMain(context.Background(), []string{"calibrate", "-c", cfg, "--use", "f1", "--write", root}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "not writing "+cfg+": 9 good images cannot bound a false-reject rate of 0.001 (2995 are needed); --force writes threshold") ||
		strings.Count(errb.String(), "\n") != 1 {
		t.Fatalf("calibrate --write on too few: exit %d: %q", code, errb.String())
	}
	if after, _ := os.ReadFile(cfg); !bytes.Equal(after, before) {
		t.Fatalf("config changed by a refused --write:\n%s", after)
	}
	out.Reset()
	errb.Reset()
	if code := realMain(context.Background(), []string{"calibrate", "-c", cfg, "--use", "f1", "--png", png, "--write", "--force", root}, &out, &errb); code != 0 {
		t.Fatalf("calibrate: exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"9 good and 8 defective images scored", "<- best F1", "too few good images for a false-reject rate of 0.001", "2995 are needed", "threshold set to"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if b, err := os.ReadFile(png); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Errorf("plot %s: %v", png, err)
	}
	text, _ := os.ReadFile(cfg)
	if !strings.HasPrefix(string(text), "# the line's config\n") || strings.Contains(string(text), "threshold: 30") {
		t.Fatalf("config after --write:\n%s", text)
	}
	// the written threshold: every demo defect rejected, every good part passed
	out.Reset()
	if code := realMain(context.Background(), []string{"eval", "-c", cfg, "--json", root}, &out, &errb); code != 0 {
		t.Fatalf("eval: exit %d: %s", code, errb.String())
	}
	var rep struct{ Confusion evaluate.Confusion }
	json.Unmarshal(out.Bytes(), &rep)
	if c := rep.Confusion; c.TruePositive != 8 || c.TrueNegative != 8 {
		t.Fatalf("at the written threshold: %+v", c)
	}
	// what calibrate refuses, before scoring anything
	goodOnly := filepath.Join(root, "test", "good")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--false-reject", "2", root}, "--false-reject 2: want a rate between 0 and 1, both excluded"},
		{[]string{"--false-reject", "0", root}, "--false-reject 0: want a rate between 0 and 1"},
		{[]string{"--escape", "NaN", root}, "--escape NaN: want a rate between 0 and 1"},
		{[]string{"--use", "best", root}, `--use "best": want frr, escape or f1`},
		{[]string{"--use", "escape", goodOnly}, "needs defects in DIR"},
		{[]string{t.TempDir()}, "no images"}, // an empty folder
		{[]string{}, "no DIR"},               // -c FILE is not taken for DIR
		{[]string{"/nonexistent/dir"}, "/nonexistent/dir: no such folder"},
		{[]string{"--force", root}, "--force only applies to --write"},
	} {
		errb.Reset()
		code := realMain(context.Background(), append([]string{"calibrate", "-c", cfg}, tc.args...), io.Discard, &errb)
		if code != 2 || !strings.Contains(errb.String(), tc.want) || strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, errb.String(), tc.want)
		}
	}
}

// bench measures the pipeline and the bare Invoke loop in one run (no timing is
// asserted: speed goals live in benchmarks): every stage's percentiles in order, the
// ratio the quotient of the two rates, and no pulse on a real output (simulated pins).
func TestBenchReports(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	cfg := filepath.Join(t.TempDir(), "bench.yaml")
	os.WriteFile(cfg, []byte("model:\n  path: "+testlib.Demo("adtr.tflite")+"\n  library: "+lib+"\ncapture:\n  replay:\n    path: "+testlib.Demo("frames")+"\n"), 0o644)
	var out, errb bytes.Buffer
	if code := realMain(context.Background(), []string{"bench", "-c", cfg, "-n", "12", "--fps", "0", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("bench: exit %d: %s", code, errb.String())
	}
	var rep app.BenchReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if rep.Frames != 12 || !(rep.PipelineFPS > 0) || !(rep.BareFPS > 0) || math.Abs(rep.Ratio-rep.PipelineFPS/rep.BareFPS) > 1e-9 || len(rep.Stages) != len(app.BenchStages) {
		t.Fatalf("report %+v", rep)
	}
	for name, l := range rep.Stages {
		if !(l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max && l.Max > 0 || name == "scoring" && l.Max >= 0) {
			t.Errorf("%s: %+v out of order", name, l)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-n", "5"}, "-n 5: want 10..1000000"},
		{[]string{"--fps", "-3"}, "--fps -3: want 0..10000"},
		{[]string{"--fps", "NaN"}, "--fps NaN: want 0..10000"},
	} {
		errb.Reset()
		if code := realMain(context.Background(), append([]string{"bench", "-c", cfg}, tc.args...), io.Discard, &errb); code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, %q", tc.args, code, errb.String())
		}
	}
}

// eval and calibrate on the inputs real folders hold: odd but valid images are scored
// (grey expanded to RGB, alpha dropped, 16-bit samples >> 8, masks of another size
// resized as the toolkit does), bad ones are one line naming the file, exit 2.
func TestEvalAndCalibrateOnOddAndBadFolders(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	decode := func(t *testing.T, name string) image.Image {
		f, err := os.Open(testlib.Demo("frames", name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		img, err := png.Decode(f)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	save := func(t *testing.T, path string, img image.Image) {
		f, _ := os.Create(path)
		defer f.Close()
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
	}
	convert := func(src image.Image, dst draw.Image) image.Image {
		draw.Draw(dst, dst.Bounds(), src, src.Bounds().Min, draw.Src)
		return dst
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, root string) string // returns the DIR to give
		code  int
		want  string // in stderr ("" = ok)
	}{
		// a grey, an RGBA and a 16-bit grey good part, and a mask at a quarter size
		{"odd images", func(t *testing.T, root string) string {
			g := decode(t, "000_good.png")
			b := g.Bounds()
			save(t, filepath.Join(root, "test", "good", "g8.png"), convert(g, image.NewGray(b)))
			save(t, filepath.Join(root, "test", "good", "rgba.png"), convert(g, image.NewNRGBA(b)))
			save(t, filepath.Join(root, "test", "good", "g16.png"), convert(g, image.NewGray16(b)))
			m := decode(t, filepath.Join("masks", "001_scratch_mask.png"))
			small := image.NewGray(image.Rect(0, 0, b.Dx()/4, b.Dy()/4))
			for y := range small.Bounds().Dy() {
				for x := range small.Bounds().Dx() {
					small.Set(x, y, m.At(4*x, 4*y))
				}
			}
			save(t, filepath.Join(root, "ground_truth", "scratch", "001_scratch_mask.png"), small)
			return root
		}, 0, ""},
		// a truncated PNG among the good parts
		{"truncated image", func(t *testing.T, root string) string {
			os.WriteFile(filepath.Join(root, "test", "good", "cut.png"), []byte("\x89PNG\r\n\x1a\n\x00\x00"), 0o644)
			return root
		}, 2, "cut.png"},
		// a folder that does not exist
		{"missing folder", func(t *testing.T, root string) string { return filepath.Join(root, "nope") }, 2, "nope"},
		// an empty folder
		{"empty folder", func(t *testing.T, root string) string {
			d := filepath.Join(root, "empty")
			os.Mkdir(d, 0o755)
			return d
		}, 2, "empty"},
		// good/ without images
		{"no good images", func(t *testing.T, root string) string {
			os.RemoveAll(filepath.Join(root, "test", "good"))
			os.Mkdir(filepath.Join(root, "test", "good"), 0o755)
			return root
		}, 2, "good"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := demoMVTec(t)
			dir := tc.setup(t, root)
			cfg := filepath.Join(t.TempDir(), "c.yaml")
			os.WriteFile(cfg, []byte("model:\n  path: "+testlib.Demo("adtr.tflite")+"\n  library: "+lib+"\ncapture:\n  replay:\n    path: "+testlib.Demo("frames")+"\n"), 0o644)
			for _, cmd := range [][]string{{"eval", "-c", cfg, dir}, {"calibrate", "-c", cfg, "--png", "", dir}} {
				var errb bytes.Buffer
				code := realMain(context.Background(), cmd, io.Discard, &errb)
				if tc.name == "no good images" && cmd[0] == "calibrate" {
					continue // calibrate then takes train/good as the good images: see calibrationImages
				}
				if code != tc.code || !strings.Contains(errb.String(), tc.want) || (tc.code != 0 && strings.Count(errb.String(), "\n") != 1) {
					t.Errorf("%s: exit %d, stderr %q; want %d and %q", cmd[0], code, errb.String(), tc.code, tc.want)
				}
			}
		})
	}
}

// The three line tools on the toolkit's generated data (`python -m adtr synth`, the
// demo's category from another seed, so none of these images trained the model).
func TestLineToolsOnGeneratedData(t *testing.T) {
	lib, py := testlib.TFLiteLibrary(t), testlib.Python(t)
	out := t.TempDir()
	gen := exec.Command(py, "-m", "adtr", "synth", "--out", out, "--categories", "printed_part", "--train", "6", "--test-good", "12", "--test-defect", "3", "--seed", "7")
	gen.Dir = filepath.Join(testlib.Root(), "training")
	if b, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("adtr synth: %v\n%s", err, b)
	}
	root := filepath.Join(out, "printed_part")
	cfg := filepath.Join(t.TempDir(), "line.yaml")
	os.WriteFile(cfg, []byte("model:\n  path: "+testlib.Demo("adtr.tflite")+"\n  library: "+lib+"\ncapture:\n  replay:\n    path: "+filepath.Join(root, "train", "good")+"\n"), 0o644)
	var stdout, errb bytes.Buffer
	if code := realMain(context.Background(), []string{"eval", "-c", cfg, "--json", root}, &stdout, &errb); code != 0 {
		t.Fatalf("eval: exit %d: %s", code, errb.String())
	}
	var rep struct {
		Good, Defective        int
		ImageAUROC, PixelAUROC float64 `json:"-"`
	}
	var raw map[string]any
	json.Unmarshal(stdout.Bytes(), &raw)
	json.Unmarshal(stdout.Bytes(), &rep)
	img, pix := raw["image_auroc"].(float64), raw["pixel_auroc"].(float64)
	// the demo model on new parts of its own kind: it must still find the defects
	if rep.Good != 12 || rep.Defective != 12 || img < 0.9 || pix < 0.9 {
		t.Fatalf("eval on generated data: %d good, %d defective, image %.4f, pixel %.4f", rep.Good, rep.Defective, img, pix)
	}
	stdout.Reset()
	if code := realMain(context.Background(), []string{"calibrate", "-c", cfg, "--png", "", "--false-reject", "0.05", root}, &stdout, &errb); code != 0 ||
		!strings.Contains(stdout.String(), "18 good and 12 defective images scored") {
		t.Fatalf("calibrate: exit %d: %s%s", code, stdout.String(), errb.String())
	}
	stdout.Reset()
	if code := realMain(context.Background(), []string{"bench", "-c", cfg, "-n", "10", "--fps", "0"}, &stdout, &errb); code != 0 || !strings.Contains(stdout.String(), "pipeline/bare") {
		t.Fatalf("bench: exit %d: %s%s", code, stdout.String(), errb.String())
	}
	t.Logf("generated printed_part, seed 7: image AUROC %.4f, pixel %.4f", img, pix)
}

// A GStreamer camera (videotestsrc: there is no physical camera here) feeds the
// daemon: frames are scored end to end. Killing the daemon with SIGKILL leaves no
// gst-launch-1.0 behind, even one that is not writing (a camera waiting for its
// trigger would never get the SIGPIPE a writing one gets): Pdeathsig kills it.
func TestCameraRunAndKillLeavesNoChild(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	testlib.Tool(t, "gst-launch-1.0")
	for _, tc := range []struct {
		name   string
		head   string
		scored int // frames to see scored before the kill
	}{
		// a live test pattern, scored by the demo model
		{"scoring", "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1", 5},
		// a camera that sends nothing (its frames dropped by a closed valve)
		{"silent", "videotestsrc is-live=true ! video/x-raw,width=320,height=240 ! valve drop=true", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "adtrd.yaml")
			os.WriteFile(cfg, []byte("model:\n  path: "+testlib.Demo("adtr.tflite")+"\n  library: "+lib+
				"\ncapture:\n  source: camera\n  camera:\n    uri: \"gst://"+tc.head+"\"\n"+
				"    width: 320\n    height: 240\n    first_frame: 1m\nhttp:\n  address: \"\"\n"), 0o644)
			cmd := testDaemon()
			cmd.Env = append(os.Environ(), "ADTRD_TEST_MAIN=1", "ADTRD_TEST_ARGS=run -c "+cfg)
			stderr, _ := cmd.StderrPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			// The daemon's log, read to the end in the background; the test waits for
			// its scored frames at most two minutes (a loaded machine with -race), and
			// says what the daemon logged if they do not come.
			lines := make(chan string, 64)
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(stderr)
				for sc.Scan() {
					select {
					case lines <- sc.Text():
					default: // nobody reads any more: drain
					}
				}
			}()
			scored, seen := 0, []string{}
			timeout := time.After(2 * time.Minute)
			for scored < tc.scored {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("%d camera frames scored before the daemon's log ended:\n%s", scored, strings.Join(seen, "\n"))
					}
					if len(seen) < 40 {
						seen = append(seen, l)
					}
					if strings.Contains(l, "msg=frame") && strings.Contains(l, "reason=score") && strings.Contains(l, "frame=camera") {
						scored++
					}
				case <-timeout:
					t.Fatalf("%d camera frames scored in 2 minutes; the daemon logged:\n%s", scored, strings.Join(seen, "\n"))
				}
			}
			var kids []int
			for deadline := time.Now().Add(10 * time.Second); len(kids) == 0 && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond)
				kids = testlib.Children(t, cmd.Process.Pid)
			}
			if len(kids) != 1 {
				t.Fatalf("daemon's children %v: want the one gst-launch-1.0", kids)
			}
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			deadline := time.Now().Add(5 * time.Second)
			for {
				b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", kids[0]))
				if err != nil || strings.Contains(string(b), ") Z ") {
					return // gone (or a zombie waiting for init to reap it)
				}
				if time.Now().After(deadline) {
					syscall.Kill(kids[0], syscall.SIGKILL)
					t.Fatalf("gst-launch-1.0 (pid %d) still running 5 s after the daemon was killed", kids[0])
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
