// Package testlib finds what the repository's tests share: the TFLite C library that
// `make deps` unpacks and the demo model, so that every package's tests agree on them.
package testlib

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Root is the repository root, found from this file's location.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// TFLiteLibrary returns the library for this GOARCH. Without it the test is skipped,
// saying so, unless ADTRD_REQUIRE_TFLITE is set (as `make test` does), when it fails.
func TFLiteLibrary(t testing.TB) string {
	t.Helper()
	p := os.Getenv("ADTRD_TFLITE_LIB")
	if p == "" {
		p = filepath.Join(Root(), "third_party", "tflite", "linux_"+runtime.GOARCH, "libtensorflowlite_c.so")
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("ADTRD_REQUIRE_TFLITE") != "" {
			t.Fatalf("%s: missing (run `make deps`)", p)
		}
		t.Skipf("%s: missing; run `make deps` to run inference tests", p)
	}
	return p
}

// Demo is a path under models/demo.
func Demo(elem ...string) string {
	return filepath.Join(append([]string{Root(), "models", "demo"}, elem...)...)
}
