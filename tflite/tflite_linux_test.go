//go:build linux && cgo

package tflite_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/internal/testlib"
	"github.com/adtrd/adtrd/tflite"
)

func openLib(t *testing.T) *tflite.Library {
	t.Helper()
	lib, err := tflite.Open(testlib.TFLiteLibrary(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lib.Close() })
	return lib
}

func TestOpenMissingLibraryNamesWhatWasTried(t *testing.T) {
	_, err := tflite.Open("/nonexistent/libtensorflowlite_c.so")
	if !errors.Is(err, tflite.ErrLibrary) {
		t.Fatalf("err = %v, want ErrLibrary", err)
	}
	if !strings.Contains(err.Error(), "/nonexistent/libtensorflowlite_c.so: not found") {
		t.Fatalf("error does not name the path: %v", err)
	}
	// a file that is not a shared library
	bad := filepath.Join(t.TempDir(), "libtensorflowlite_c.so")
	os.WriteFile(bad, []byte("nope"), 0o644)
	if _, err := tflite.Open(bad); !errors.Is(err, tflite.ErrLibrary) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("err = %v", err)
	}
}

func TestVersionAndDemoTensors(t *testing.T) {
	lib := openLib(t)
	if lib.Version() != "2.9.0" {
		t.Fatalf("version %q, want 2.9.0 (tfjs-tflite-node@0.0.2)", lib.Version())
	}
	it, err := lib.NewInterpreter(testlib.Demo("adtr.tflite"), tflite.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	in, out := it.Inputs(), it.Outputs()
	if len(in) != 1 || in[0].Type != tflite.UInt8 || !slices.Equal(in[0].Shape, []int{1, 224, 224, 3}) {
		t.Fatalf("input %+v", in)
	}
	if len(out) != 1 || out[0].Type != tflite.Int8 || !slices.Equal(out[0].Shape, []int{1, 14, 14}) || out[0].Quant.Scale <= 0 {
		t.Fatalf("output %+v", out)
	}
	if len(in[0].Bytes()) != 224*224*3 {
		t.Fatalf("input buffer %d bytes", len(in[0].Bytes()))
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	if err := it.Close(); err != nil { // twice is fine
		t.Fatal(err)
	}
	if err := it.Invoke(); !errors.Is(err, tflite.ErrClosed) {
		t.Fatalf("invoke after close: %v", err)
	}
}

func TestBadModelFiles(t *testing.T) {
	lib := openLib(t)
	dir := t.TempDir()
	good, err := os.ReadFile(testlib.Demo("adtr.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		path string
		want string
	}{
		// the file is not there at all
		{"missing", filepath.Join(dir, "nope.tflite"), "no such file"},
		// zero bytes
		{"empty", write("empty.tflite", nil), "not a TFLite model"},
		// a PNG renamed to .tflite: TFLite prints its reason on stderr, which the error carries
		{"not tflite", write("png.tflite", []byte("\x89PNG\r\n\x1a\n0000000000000000000000000000")), "not a TFLite model the library can read (The model is not a valid Flatbuffer buffer)"},
		// cut off half way
		{"truncated", write("half.tflite", good[:len(good)/2]), "not a TFLite model"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			it, err := lib.NewInterpreter(tc.path, tflite.Options{})
			if err == nil {
				it.Close()
				t.Fatal("no error")
			}
			if b, rerr := os.ReadFile(tc.path); rerr == nil {
				// the same bytes through the from-memory path fail the same way
				it, err := lib.NewInterpreterFromBytes(tc.path, b, tflite.Options{})
				if err == nil {
					it.Close()
					t.Fatal("from bytes: no error")
				}
				if !errors.Is(err, tflite.ErrModel) || !strings.Contains(err.Error(), tc.path) {
					t.Fatalf("from bytes: err = %v", err)
				}
			}
			if !errors.Is(err, tflite.ErrModel) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
				t.Fatalf("err = %v, want ErrModel naming %s and %q", err, tc.path, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

// The C library's raw int8 maps on the demo frames, with XNNPACK as the daemon runs
// it, equal the Python interpreter's (golden.json): not one quantisation step apart.
func TestDemoFramesMatchGolden(t *testing.T) {
	lib := openLib(t)
	it, err := lib.NewInterpreter(testlib.Demo("adtr.tflite"), tflite.Options{Threads: 2, XNNPACK: true})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	g := testlib.LoadGolden(t)
	in, out := it.Inputs()[0].Bytes(), it.Outputs()[0].Bytes()
	for _, f := range g.Frames {
		px, err := capture.LoadRGB(testlib.Demo("frames", f.File), capture.Size{W: 224, H: 224}, capture.FitResize)
		if err != nil {
			t.Fatal(err)
		}
		copy(in, px)
		if err := it.Invoke(); err != nil {
			t.Fatal(err)
		}
		worst := 0
		for i, b := range out {
			if d := abs(int(int8(b)) - f.Map[i]); d > worst {
				worst = d
			}
		}
		if worst > 0 {
			t.Errorf("%s: map differs from golden by %d steps", f.File, worst)
		}
	}
}

func TestInvokeDoesNotAllocate(t *testing.T) {
	lib := openLib(t)
	it, err := lib.NewInterpreter(testlib.Demo("adtr.tflite"), tflite.Options{Threads: 1, XNNPACK: true})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if n := testing.AllocsPerRun(3, func() { it.Invoke() }); n != 0 {
		t.Fatalf("%v allocations per Invoke", n)
	}
}

// BenchmarkInvoke is the bare inference loop the pipeline is measured against, on
// XNNPACK (the daemon's default) and on TFLite's built-in kernels (delegate: cpu).
// BenchmarkInvoke times the bare Invoke loop on the demo graph and, with
// ADTRD_BENCH_COMPARE=PATH (`make bench BENCH_COMPARE=PATH`), on another graph in the
// same run, so that two graphs are compared on one machine at one time.
func BenchmarkInvoke(b *testing.B) {
	graphs := []struct{ name, path string }{{"demo", testlib.Demo("adtr.tflite")}}
	if p := os.Getenv("ADTRD_BENCH_COMPARE"); p != "" {
		graphs = append(graphs, struct{ name, path string }{"compare", p})
	}
	for _, g := range graphs {
		for _, bc := range []struct {
			threads int
			xnnpack bool
		}{{1, true}, {2, true}, {1, false}, {2, false}} {
			name := fmt.Sprintf("graph=%s/threads=%d/xnnpack", g.name, bc.threads)
			if !bc.xnnpack {
				name = fmt.Sprintf("graph=%s/threads=%d/cpu", g.name, bc.threads)
			}
			benchInvoke(b, name, g.path, bc.threads, bc.xnnpack)
		}
	}
}

func benchInvoke(b *testing.B, name, graph string, threads int, xnnpack bool) {
	b.Run(name, func(b *testing.B) {
		lib, err := tflite.Open(testlib.TFLiteLibrary(b))
		if err != nil {
			b.Fatal(err)
		}
		defer lib.Close()
		it, err := lib.NewInterpreter(graph, tflite.Options{Threads: threads, XNNPACK: xnnpack})
		if err != nil {
			b.Fatal(err)
		}
		defer it.Close()
		b.ReportAllocs()
		for b.Loop() {
			if err := it.Invoke(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	})
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
