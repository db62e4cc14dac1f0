// Package testlib finds what the repository's tests share: the TFLite C library that
// `make deps` unpacks and the demo model, so that every package's tests agree on them.
package testlib

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
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

// ONNXRuntimeLibrary returns ONNX Runtime's CPU library for this GOARCH (make deps
// fetches it beside TFLite's), skipping or failing as TFLiteLibrary does.
func ONNXRuntimeLibrary(t testing.TB) string {
	t.Helper()
	p := filepath.Join(Root(), "third_party", "onnxruntime", "linux_"+runtime.GOARCH, "libonnxruntime.so.1")
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("ADTRD_REQUIRE_TFLITE") != "" {
			t.Fatalf("%s: missing (run `make deps`)", p)
		}
		t.Skipf("%s: missing; run `make deps` to run the ONNX Runtime tests", p)
	}
	return p
}

// LiteRTLibrary is the libLiteRt.so `make deps` unpacks (scripts/fetch-litert.sh),
// with the GPU accelerator beside it; missing, the test skips, or fails where
// ADTRD_REQUIRE_TFLITE says the libraries must be there (make test).
func LiteRTLibrary(t testing.TB) string {
	t.Helper()
	p := filepath.Join(Root(), "third_party", "litert", "linux_"+runtime.GOARCH, "libLiteRt.so")
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("ADTRD_REQUIRE_TFLITE") != "" {
			t.Fatalf("%s: missing (run `make deps`)", p)
		}
		t.Skipf("%s: missing; run `make deps` to run the LiteRT tests", p)
	}
	return p
}

// Lavapipe is Mesa's Vulkan driver on the CPU (mesa-vulkan-drivers from Debian's
// bookworm-backports, `make sysdeps`), the real Vulkan device the LiteRT GPU tests
// run on where there is no GPU; missing, the test skips, or fails under
// ADTRD_REQUIRE_TOOLS (make test).
func Lavapipe(t testing.TB) {
	t.Helper()
	const icd = "/usr/share/vulkan/icd.d/lvp_icd.json"
	if _, err := os.Stat(icd); err != nil {
		if os.Getenv("ADTRD_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s: missing (scripts/install-debs.sh installs mesa-vulkan-drivers from bookworm-backports)", icd)
		}
		t.Skipf("%s: missing; `make sysdeps` installs Mesa's lavapipe", icd)
	}
}

// WithDemoMetadata copies the graph file into dir beside the demo model's metadata
// (the .onnx's for an .onnx graph),
// its sha256 replaced by the graph's and its engines' reference scores dropped (they
// are the demo graph's): a graph that passes every check made before a runtime runs
// it, such as engine/vet/testdata's crash.tflite. It returns the copy's path.
func WithDemoMetadata(t testing.TB, graph, dir string) string {
	t.Helper()
	b, err := os.ReadFile(graph)
	if err != nil {
		t.Fatal(err)
	}
	demoMeta := "adtr.tflite.json"
	if strings.HasSuffix(graph, ".onnx") {
		demoMeta = "adtr.onnx.json" // float input and map
	}
	mb, err := os.ReadFile(Demo(demoMeta))
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	if err := json.Unmarshal(mb, &meta); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	meta["sha256"] = hex.EncodeToString(sum[:])
	delete(meta, "engines")
	mb, _ = json.Marshal(meta)
	path := filepath.Join(dir, filepath.Base(graph))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".json", mb, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Demo is a path under models/demo.
func Demo(elem ...string) string {
	return filepath.Join(append([]string{Root(), "models", "demo"}, elem...)...)
}

// Golden is models/demo/golden.json: the Python TFLite interpreter's raw int8 maps
// and scores on the demo frames, written by `python -m adtr demo`.
type Golden struct {
	SHA256 string `json:"sha256"`
	Output struct {
		Scale     float64 `json:"scale"`
		ZeroPoint int32   `json:"zero_point"`
		Shape     []int   `json:"shape"`
	} `json:"output"`
	PoolKernel int     `json:"pool_kernel"`
	Threshold  float64 `json:"threshold"`
	Frames     []struct {
		File      string  `json:"file"`
		Kind      string  `json:"kind"`
		Defective bool    `json:"defective"`
		Map       []int   `json:"map"`
		Score     float64 `json:"score"`
		Reject    bool    `json:"reject"`
	} `json:"frames"`
}

// LoadGolden reads the golden file or fails the test.
func LoadGolden(t testing.TB) Golden {
	t.Helper()
	b, err := os.ReadFile(Demo("golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g Golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("golden.json: %v", err)
	}
	return g
}
