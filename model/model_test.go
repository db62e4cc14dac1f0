package model_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/adtrd/adtrd/internal/testlib"
	"github.com/adtrd/adtrd/model"
)

func TestDemoMetadata(t *testing.T) {
	m, err := model.Load(testlib.Demo("adtr.tflite.json"))
	if err != nil {
		t.Fatal(err)
	}
	p := m.ScoreParams()
	if p.Grid != 14 || p.Size != 224 || p.Kernel != 16 || p.Scale <= 0 {
		t.Fatalf("%+v", p)
	}
	if _, err := m.CheckGraphFile(testlib.Demo("adtr.tflite")); err != nil {
		t.Fatal(err)
	}
	if !m.Exact() {
		t.Fatal("the demo graph's metadata does not say exact int8 rounding")
	}
	if _, err := m.CheckGraphFile(testlib.Demo("adtr.onnx")); !errors.Is(err, model.ErrMetadata) {
		t.Fatalf("another graph's bytes accepted: %v", err)
	}
}

func TestBadMetadata(t *testing.T) {
	raw, err := os.ReadFile(testlib.Demo("adtr.tflite.json"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(m map[string]any)
		want   string
	}{
		{"format", func(m map[string]any) { m["format"] = "other/9" }, `format "other/9"`},                           // another file kind
		{"upsample", func(m map[string]any) { m["upsample"] = "nearest" }, `upsample "nearest"`},                     // a rule the scorer lacks
		{"threshold", func(m map[string]any) { m["threshold"] = 0 }, "threshold 0"},                                  // no threshold
		{"kernel", func(m map[string]any) { m["pool_kernel"] = 999 }, "pool_kernel 999"},                             // kernel larger than the image
		{"grid", func(m map[string]any) { m["grid"] = []int{14} }, "grid [14]"},                                      // not a square grid
		{"channels", func(m map[string]any) { m["input"].(map[string]any)["channels"] = 1 }, "input has 1 channels"}, // grey input
		{"sha", func(m map[string]any) { m["sha256"] = "abc" }, `sha256 "abc"`},                                      // not a hash
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			json.Unmarshal(raw, &m)
			tc.change(m)
			b, _ := json.Marshal(m)
			p := filepath.Join(t.TempDir(), "m.tflite.json")
			os.WriteFile(p, b, 0o644)
			_, err := model.Load(p)
			if !errors.Is(err, model.ErrMetadata) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("err = %v, want %q naming %s", err, tc.want, p)
			}
		})
	}
}

// A model file that cannot be read as one is a model error, never a metadata one: the
// metadata beside it may be fine, and "model metadata: /dev/zero" sends a user to the
// wrong file.
func TestUnreadableModelFileIsAModelError(t *testing.T) {
	m, err := model.Load(testlib.Demo("adtr.tflite.json"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.tflite")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.tflite")
	os.WriteFile(empty, nil, 0o644)
	unreadable := filepath.Join(dir, "unreadable.tflite")
	os.WriteFile(unreadable, []byte("x"), 0o000)
	for _, tc := range []struct {
		path, want string
	}{
		{"/dev/zero", "not a regular file (a character device)"}, // a device never ends
		{dir, "not a regular file (a directory)"},                // a folder
		{fifo, "not a regular file (a FIFO)"},                    // a FIFO would block the read
		{empty, "empty file"},                                    // cut to nothing
		{filepath.Join(dir, "missing.tflite"), "no such file"},   // not there
		{unreadable, "permission denied"},                        // mode 000 (root reads it anyway: skipped)
	} {
		if tc.path == unreadable && os.Getuid() == 0 {
			continue
		}
		_, err := m.CheckGraphFile(tc.path)
		if !errors.Is(err, model.ErrModel) || errors.Is(err, model.ErrMetadata) || !strings.Contains(err.Error(), tc.want) ||
			!strings.HasPrefix(err.Error(), "model: ") || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("%s: %v, want a model error with %q", tc.path, err, tc.want)
		}
	}
}
