package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/adtrd/adtrd/internal/testlib"
)

// goodFrames copies the demo's 8 good frames into a new folder.
func goodFrames(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "good")
	os.Mkdir(dir, 0o755)
	frames, _ := filepath.Glob(testlib.Demo("frames", "*_good.png"))
	for _, f := range frames {
		b, _ := os.ReadFile(f)
		os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644)
	}
	return dir
}

// calibrate --write on a config reached through a symlink (field case 18: etc/adtrd.yaml
// -> ../real/line3.yaml) writes the threshold into real/line3.yaml and keeps the link.
func TestCalibrateWritesThroughASymlinkedConfig(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "real"), 0o755)
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	real := filepath.Join(dir, "real", "line3.yaml")
	os.WriteFile(real, []byte("model:\n  path: "+testlib.Demo("adtr.tflite")+"\n  library: "+lib+"\nhttp:\n  address: ''\n"), 0o640)
	cfg := filepath.Join(dir, "etc", "adtrd.yaml")
	os.Symlink("../real/line3.yaml", cfg)
	var out, errb bytes.Buffer
	if code := realMain(context.Background(), []string{"calibrate", "-c", cfg, "--write", "--force", goodFrames(t)}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if dest, err := os.Readlink(cfg); err != nil || dest != "../real/line3.yaml" {
		t.Fatalf("the link is now %q (%v)", dest, err)
	}
	text, _ := os.ReadFile(real)
	if !strings.Contains(string(text), "threshold: ") || !strings.Contains(out.String(), cfg+": threshold set to") {
		t.Fatalf("%s:\n%s\nstdout:\n%s", real, text, out.String())
	}
	if fi, _ := os.Stat(real); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode now %v", fi.Mode().Perm())
	}
}

// What calibrate would write is checked before any image is scored: a --png into a
// folder that is not there fails at once, even where scoring would have failed too (a
// truncated image among the good ones: its error would name cut.png).
func TestCalibrateChecksItsOutputsBeforeScoring(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "line.yaml")
	os.WriteFile(cfg, []byte("model:\n  path: "+testlib.Demo("adtr.tflite")+"\n  library: "+lib+"\n"), 0o644)
	good := goodFrames(t)
	os.WriteFile(filepath.Join(good, "cut.png"), []byte("\x89PNG\r\n\x1a\n\x00\x00"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		// a folder that does not exist
		{[]string{"--png", filepath.Join(dir, "plots", "scores.png")}, "--png " + filepath.Join(dir, "plots", "scores.png") + ": folder " + filepath.Join(dir, "plots") + " does not exist"},
		// a folder given where the PNG file goes
		{[]string{"--png", dir}, "not a regular file (a folder)"},
		// a file where its folder should be
		{[]string{"--png", filepath.Join(cfg, "scores.png")}, "is not a folder"},
	} {
		var errb bytes.Buffer
		code := realMain(context.Background(), append(append([]string{"calibrate", "-c", cfg}, tc.args...), good), io.Discard, &errb)
		if code != 2 || !strings.Contains(errb.String(), tc.want) || strings.Contains(errb.String(), "cut.png") || strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q, want 2 and %q", tc.args, code, errb.String(), tc.want)
		}
	}
}

// calibrate writes nothing that was not asked for: no plot in the working folder
// without --png (it used to leave calibrate.png wherever it ran, one was committed).
func TestCalibrateWritesNoPlotUnlessAsked(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	cfg := filepath.Join(t.TempDir(), "line.yaml")
	os.WriteFile(cfg, []byte("model:\n  path: "+testlib.Demo("adtr.tflite")+"\n  library: "+lib+"\n"), 0o644)
	good := goodFrames(t)
	wd := t.TempDir()
	t.Chdir(wd)
	var out, errb bytes.Buffer
	if code := realMain(context.Background(), []string{"calibrate", "-c", cfg, good}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if ents, _ := os.ReadDir(wd); len(ents) != 0 || strings.Contains(out.String(), "plot:") {
		t.Fatalf("working folder holds %v; stdout:\n%s", ents, out.String())
	}
	for _, d := range []string{filepath.Dir(cfg), good} {
		if m, _ := filepath.Glob(filepath.Join(d, "*calibrate*")); len(m) != 0 {
			t.Errorf("written beside the inputs: %v", m)
		}
	}
}
