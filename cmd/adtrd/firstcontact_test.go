package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/adtrd/adtrd/internal/testlib"
)

// A config that names only a model (and, here, the library the tests use) is enough
// for check, eval and calibrate: the default replay folder beside it is not there,
// and only `run` reads it, failing on one line that names capture.replay.path. A
// replay folder the file names and that is missing still fails check.
func TestLineToolsOnAConfigThatNamesOnlyAModel(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "line.yaml")
	os.WriteFile(cfg, []byte("model:\n  path: "+testlib.Demo("adtr.tflite")+"\n  library: "+lib+"\nhttp:\n  address: ''\n"), 0o644)
	root := demoMVTec(t)
	t.Chdir(dir)
	for _, tc := range []struct {
		args []string
		code int
		out  string // in stdout
		err  string // in stderr, one line; "" = nothing
	}{
		// ok, and says what run would need
		{[]string{"check", "-c", cfg}, 0, cfg + ": ok (`adtrd run` and `adtrd bench` would replay " + filepath.Join(dir, "models/demo/frames") + ", which does not exist", ""},
		{[]string{"eval", "-c", cfg, root}, 0, "image AUROC 1.0000", ""},
		{[]string{"calibrate", "-c", cfg, root}, 0, "config snippet", ""},
		// run and bench are the ones that need the folder
		{[]string{"run", "-c", cfg}, 1, "", "capture.replay.path: replay folder " + filepath.Join(dir, "models/demo/frames") + " not found"},
		{[]string{"bench", "-c", cfg}, 1, "", "capture.replay.path: replay folder " + filepath.Join(dir, "models/demo/frames") + " not found"},
		// a config named relative to the working folder: the path is said in full
		{[]string{"check", "-c", "line.yaml"}, 0, "line.yaml: ok (`adtrd run` and `adtrd bench` would replay " + filepath.Join(dir, "models/demo/frames") + ", which", ""},
	} {
		var out, errb bytes.Buffer
		code := realMain(context.Background(), tc.args, &out, &errb)
		if tc.args[0] == "run" {
			// run logs as it starts; its last line is the reason it stopped
			lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
			errb.Reset()
			errb.WriteString(lines[len(lines)-1] + "\n")
		}
		if code != tc.code || !strings.Contains(out.String(), tc.out) || tc.err == "" && errb.Len() != 0 ||
			tc.err != "" && (!strings.Contains(errb.String(), tc.err) || strings.Count(errb.String(), "\n") != 1) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.args[0], code, out.String(), errb.String(), tc.code, tc.out, tc.err)
		}
	}
	// a replay folder the file names is checked
	named := filepath.Join(dir, "named.yaml")
	os.WriteFile(named, []byte("model:\n  path: "+testlib.Demo("adtr.tflite")+"\n  library: "+lib+"\ncapture:\n  replay:\n    path: frames\n"), 0o644)
	var errb bytes.Buffer
	if code := realMain(context.Background(), []string{"check", "-c", named}, io.Discard, &errb); code != 2 ||
		!strings.Contains(errb.String(), "capture.replay.path: replay folder "+filepath.Join(dir, "frames")+" not found") {
		t.Errorf("check with a named, missing replay folder: exit %d, %q", code, errb.String())
	}
	// ... but not by eval, which never reads it
	if code := realMain(context.Background(), []string{"eval", "-c", named, root}, io.Discard, &errb); code != 0 {
		t.Errorf("eval with a named, missing replay folder: exit %d, %q", code, errb.String())
	}
}

// model.path naming something that is no model file (a device, a folder, a FIFO, an
// empty or unreadable file) is reported as the model, by check, eval and calibrate,
// whether the metadata is beside it or named: never as "model metadata", never as
// "<path>.json not found".
func TestModelPathThatIsNoModelFile(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.tflite")
	syscall.Mkfifo(fifo, 0o644)
	empty := filepath.Join(dir, "empty.tflite")
	os.WriteFile(empty, nil, 0o644)
	unreadable := filepath.Join(dir, "unreadable.tflite")
	os.WriteFile(unreadable, []byte("x"), 0o000)
	meta, _ := os.ReadFile(testlib.Demo("adtr.tflite.json"))
	for _, p := range []string{fifo, empty, unreadable} {
		os.WriteFile(p+".json", meta, 0o644) // metadata beside each, as export writes it
	}
	root := demoMVTec(t)
	for _, tc := range []struct {
		path, want string
	}{
		{"/dev/zero", "model /dev/zero: not a regular file (a character device)"}, // a device
		{dir, "model " + dir + ": not a regular file (a directory)"},              // a folder
		{fifo, "model " + fifo + ": not a regular file (a FIFO)"},                 // a FIFO
		{empty, "model: " + empty + ": empty file"},                               // an empty file
		{unreadable, "model: open " + unreadable + ": permission denied"},         // mode 000 (not as root)
	} {
		if tc.path == unreadable && os.Getuid() == 0 {
			continue
		}
		for _, metaKey := range []string{"", "\n  metadata: " + testlib.Demo("adtr.tflite.json")} {
			cfg := filepath.Join(t.TempDir(), "c.yaml")
			// no page: what is said is about the model alone, whatever holds port 8080
			os.WriteFile(cfg, []byte("model:\n  path: "+tc.path+metaKey+"\n  library: "+lib+"\nhttp:\n  address: ''\n"), 0o644)
			for _, args := range [][]string{{"check", "-c", cfg}, {"eval", "-c", cfg, root}, {"calibrate", "-c", cfg, root}} {
				var errb bytes.Buffer
				code := realMain(context.Background(), args, io.Discard, &errb)
				msg := errb.String()
				if code == 0 || !strings.Contains(msg, tc.want) || strings.Contains(msg, "metadata") || strings.Count(msg, "\n") != 1 {
					t.Errorf("%s, %s (metadata key %v): exit %d, %q; want %q", tc.path, args[0], metaKey != "", code, msg, tc.want)
				}
			}
		}
	}
}
