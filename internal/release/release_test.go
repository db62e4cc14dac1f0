// Package release checks what cross-build.sh made (ADTRD_DIST names its dist/): the
// .deb packages' contents and unit, and the arm64 binary running the demo under
// qemu-user with the arm64 TFLite library, deciding as the amd64 one does.
package release

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/adtrd/adtrd/internal/testlib"
)

func dist(t *testing.T) string {
	t.Helper()
	d := os.Getenv("ADTRD_DIST")
	if d == "" {
		t.Skip("ADTRD_DIST is not set: run `make test-release` (cross-build.sh, then these checks)")
	}
	return d
}

func debFor(t *testing.T, arch string) string {
	m, _ := filepath.Glob(filepath.Join(dist(t), "adtrd_*_"+arch+".deb"))
	if len(m) != 1 {
		t.Fatalf("want one %s .deb in %s, found %v", arch, dist(t), m)
	}
	return m[0]
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func TestDebs(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			deb := debFor(t, arch)
			root := t.TempDir()
			run(t, "dpkg-deb", "-x", deb, root)
			for _, f := range []struct {
				path string
				mode os.FileMode
			}{
				{"usr/bin/adtrd", 0o755},
				{"lib/systemd/system/adtrd.service", 0o644},
				{"etc/adtrd/adtrd.yaml", 0o644},
				{"usr/lib/adtrd/libtensorflowlite_c.so", 0o644},
				{"usr/lib/adtrd/libexternal_delegate_obj.so", 0o644},
				{"usr/lib/adtrd/libLiteRt.so", 0o644},
				{"usr/lib/adtrd/libLiteRtWebGpuAccelerator.so", 0o644},
				{"usr/share/adtrd/models/demo/adtr.tflite", 0o644},
				{"usr/share/adtrd/models/demo/adtr.tflite.json", 0o644},
				{"usr/share/adtrd/models/demo/frames/000_good.png", 0o644},
				{"usr/lib/sysusers.d/adtrd.conf", 0o644},
				{"usr/lib/udev/rules.d/60-adtrd-gpio.rules", 0o644},
				{"usr/share/doc/adtrd/example.yaml", 0o644},
			} {
				st, err := os.Stat(filepath.Join(root, f.path))
				if err != nil {
					t.Errorf("%s: %v", f.path, err)
					continue
				}
				if st.Mode().Perm() != f.mode {
					t.Errorf("%s: mode %v, want %v", f.path, st.Mode().Perm(), f.mode)
				}
			}
			// The binary and the runtime are this architecture's.
			want := map[string]string{"amd64": "x86-64", "arm64": "ARM aarch64"}[arch]
			for _, f := range []string{"usr/bin/adtrd", "usr/lib/adtrd/libtensorflowlite_c.so", "usr/lib/adtrd/libLiteRt.so"} {
				if out := run(t, "file", "-b", filepath.Join(root, f)); !strings.Contains(out, want) {
					t.Errorf("%s is %s", f, out)
				}
			}
			fields := run(t, "dpkg-deb", "-f", deb, "Package", "Version", "Architecture")
			head := strings.TrimSpace(run(t, "git", "-C", testlib.Root(), "rev-parse", "--short=10", "HEAD"))
			if !strings.Contains(fields, "Package: adtrd") || !strings.Contains(fields, "Architecture: "+arch) || !strings.Contains(fields, "."+head) {
				t.Errorf("control fields:\n%s (HEAD %s)", fields, head)
			}
			if c := run(t, "dpkg-deb", "-I", deb, "conffiles"); strings.TrimSpace(c) != "/etc/adtrd/adtrd.yaml" {
				t.Errorf("conffiles %q", c)
			}
			// The packaged unit passes verification with the packaged binary in place.
			testlib.VerifyUnit(t, filepath.Join(root, "lib/systemd/system/adtrd.service"), filepath.Join(root, "usr/bin/adtrd"))
			// The packaged config is valid once its paths point into the unpacked tree.
			if arch == "amd64" {
				b, _ := os.ReadFile(filepath.Join(root, "etc/adtrd/adtrd.yaml"))
				cfg := filepath.Join(t.TempDir(), "adtrd.yaml")
				os.WriteFile(cfg, []byte(strings.ReplaceAll(string(b), "/usr/share/adtrd", filepath.Join(root, "usr/share/adtrd"))), 0o644)
				if out := run(t, filepath.Join(root, "usr/bin/adtrd"), "check", "-c", cfg); !strings.Contains(out, "ok") {
					t.Errorf("check: %s", out)
				}
			}
		})
	}
}

type decision struct {
	Frame    string  `json:"frame"`
	Score    float64 `json:"score"`
	Decision string  `json:"decision"`
}

// demo runs one architecture's binary on the demo frames, unpaced, with JSON records.
func demo(t *testing.T, arch string) []decision {
	t.Helper()
	dir := filepath.Join(dist(t), arch)
	cfg := filepath.Join(t.TempDir(), "demo.yaml")
	os.WriteFile(cfg, []byte("model:\n  path: "+testlib.Demo("adtr.tflite")+"\n  library: "+filepath.Join(dir, "libtensorflowlite_c.so")+
		"\n  threads: 2\ncapture:\n  replay:\n    path: "+testlib.Demo("frames")+"\n    fps: 0\noutput:\n  reject:\n    delay: 30s\nlog:\n  format: json\n"), 0o644)
	args := []string{filepath.Join(dir, "adtrd"), "run", "-c", cfg}
	if arch == "arm64" {
		args = append([]string{testlib.Tool(t, "qemu-aarch64"), "-L", "/usr/aarch64-linux-gnu"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	var stderr, stdout bytes.Buffer
	cmd.Stderr, cmd.Stdout = &stderr, &stdout
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s demo: %v\n%s", arch, err, stderr.String())
	}
	var out []decision
	sc := bufio.NewScanner(&stderr)
	for sc.Scan() {
		var rec struct {
			Msg string `json:"msg"`
			decision
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "frame" {
			out = append(out, rec.decision)
		}
	}
	if !strings.Contains(stdout.String(), "summary: frames 16") {
		t.Fatalf("%s: %s", arch, stdout.String())
	}
	return out
}

// The arm64 build, under qemu-user with the arm64 TFLite library, decides every demo
// frame as the amd64 build does, from the same int8 map, so with the same score up to
// float rounding in the scoring (the issue asks for one quantisation step). That holds by construction, not by luck: TFLite 2.9
// requantises int8 differently per architecture (its own kernels round twice on amd64,
// once on arm64; XNNPACK's per-tensor kernels round a float product half-even on x86,
// an integer one half-up on arm64), so the daemon runs int8 on XNNPACK and the exported
// graph has power-of-two scales, even weights and odd biases where weights are
// per-tensor, and doubled BATCH_MATMUL inner axes, with which every one of those
// roundings gives the same int8 (training/adtr/exact.py; TestPerChannelTiesRoundAlike).
func TestArm64DemoMatchesAmd64(t *testing.T) {
	amd, arm := demo(t, "amd64"), demo(t, "arm64")
	g := testlib.LoadGolden(t)
	if len(amd) != len(g.Frames) || len(arm) != len(amd) {
		t.Fatalf("%d amd64 and %d arm64 decisions for %d frames", len(amd), len(arm), len(g.Frames))
	}
	worst := 0.0
	for i := range amd {
		a, b := amd[i], arm[i]
		if a.Frame != b.Frame || a.Decision != b.Decision {
			t.Errorf("%s: amd64 %s, arm64 %s (%s)", a.Frame, a.Decision, b.Decision, b.Frame)
		}
		d := math.Abs(a.Score - b.Score)
		worst = max(worst, d)
		// One unit of the records' fourth decimal, not 0: the int8 maps are equal
		// (TestArm64MapsEqualGolden), but the float32 scoring of the same map differs
		// in its last bits (Go fuses multiply-adds on arm64, not on amd64; about 1e-7
		// measured), which can round to neighbouring fourth decimals in the records.
		if d > 1e-4+1e-9 {
			t.Errorf("%s: amd64 score %.9f, arm64 %.9f: %.3f quantisation steps (%.5f each) apart, want 0", a.Frame, a.Score, b.Score, d/g.Output.Scale, g.Output.Scale)
		}
	}
	t.Logf("%d frames, same decisions; largest score difference %.3g = %.3g steps of %.5f", len(amd), worst, worst/g.Output.Scale, g.Output.Scale)
}

// The arm64 TFLite library, under qemu-user, gives the same raw int8 map as golden.json
// (the toolkit's Python interpreter; the amd64 library matches it too, in
// tflite.TestDemoFramesMatchGolden) on every demo frame: not one element one step off.
// This is the cause of the equal scores above, checked directly.
func TestArm64MapsEqualGolden(t *testing.T) {
	g := testlib.LoadGolden(t)
	var frames []string
	for _, f := range g.Frames {
		frames = append(frames, testlib.Demo("frames", f.File))
	}
	got := maprun(t, "arm64", testlib.Demo("adtr.tflite"), frames)
	for i, f := range g.Frames {
		if len(got[i]) != len(f.Map) {
			t.Fatalf("maprun gave %d values for %s, want %d", len(got[i]), f.File, len(f.Map))
		}
		if diff := differ(got[i], f.Map); diff > 0 {
			t.Errorf("%s: %d of %d map elements differ from golden", f.File, diff, len(f.Map))
		}
	}
}

// Ties: exact.py keeps all 8 bits of a per-channel convolution's weights and puts no
// parity rule on its bias, because XNNPACK runs it with per-channel kernels that round
// an accumulator on a half the same way on x86 and ARM (half to even). The graphs in
// testdata/ties (training/scripts/make_tie_graphs.py) have thousands of such ties on
// these frames, counted in ties.json from the graphs' own integers; the per-channel ones
// must give the same int8 on both libraries. The control, a per-tensor convolution
// whose bias parity allows ties, must differ in exactly the ties whose floor is even
// (half to even on x86, half up on arm64): that shows the ties happen, that the count is
// right, and that the per-tensor rule (even weights, odd biases) is still needed.
func TestPerChannelTiesRoundAlike(t *testing.T) {
	dir := filepath.Join("testdata", "ties")
	raw, err := os.ReadFile(filepath.Join(dir, "ties.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Frames []string                             `json:"frames"`
		Graphs map[string]struct{ Ties, Apart int } `json:"graphs"`
	}
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatalf("ties.json: %v", err)
	}
	var frames []string
	for _, f := range want.Frames {
		frames = append(frames, testlib.Demo("frames", f))
	}
	for _, tc := range []struct {
		graph     string
		perTensor bool // the control: must round its ties apart
	}{
		{"conv1x1-per-channel", false},   // CONV_2D 1x1, 8 channels, odd and even weights, any bias
		{"depthwise-per-channel", false}, // DEPTHWISE_CONV_2D 3x3, depth multiplier 4
		{"conv1x1-per-tensor-ties", true},
	} {
		t.Run(tc.graph, func(t *testing.T) {
			w, ok := want.Graphs[tc.graph]
			if !ok || w.Apart == 0 {
				t.Fatalf("ties.json: %s has no ties that round apart (%+v): the test would prove nothing", tc.graph, w)
			}
			model := filepath.Join(dir, tc.graph+".tflite")
			amd, arm := maprun(t, "amd64", model, frames), maprun(t, "arm64", model, frames)
			diff := 0
			for i := range amd {
				diff += differ(amd[i], arm[i])
			}
			switch {
			case tc.perTensor && diff != w.Apart:
				t.Errorf("amd64 and arm64 differ in %d elements, want the %d even-floor ties of %d", diff, w.Apart, w.Ties)
			case !tc.perTensor && diff != 0:
				t.Errorf("amd64 and arm64 differ in %d elements (%d ties, %d of them would round apart)", diff, w.Ties, w.Apart)
			}
			t.Logf("%d ties (%d with an even floor), %d elements differ", w.Ties, w.Apart, diff)
		})
	}
}

// maprun runs testdata/maprun, built for arch (arm64 under qemu-user), with that
// architecture's TFLite library on XNNPACK, and returns the raw int8 output of each frame.
func maprun(t *testing.T, arch, model string, frames []string) [][]int {
	t.Helper()
	lib := filepath.Join(dist(t), arch, "libtensorflowlite_c.so")
	bin := filepath.Join(t.TempDir(), "maprun")
	build := exec.Command("go", "build", "-o", bin, "./testdata/maprun")
	build.Env = append(os.Environ(), "CGO_ENABLED=1", "GOOS=linux", "GOARCH="+arch)
	args := []string{bin, lib, model}
	if arch == "arm64" {
		build.Env = append(build.Env, "CC="+testlib.Tool(t, "aarch64-linux-gnu-gcc"))
		args = append([]string{testlib.Tool(t, "qemu-aarch64"), "-L", "/usr/aarch64-linux-gnu"}, args...)
	}
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building maprun for %s: %v\n%s", arch, err, out)
	}
	cmd := exec.Command(args[0], append(args[1:], frames...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("maprun (%s): %v\n%s", arch, err, stderr.String())
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	maps := make([][]int, len(frames))
	for i, f := range frames {
		var got struct {
			File string `json:"file"`
			Map  []int  `json:"map"`
		}
		if err := dec.Decode(&got); err != nil || got.File != filepath.Base(f) {
			t.Fatalf("maprun (%s) output for %s: %v (got %q)", arch, f, err, got.File)
		}
		maps[i] = got.Map
	}
	return maps
}

// differ counts the elements in which two maps differ; a length mismatch counts whole.
func differ(a, b []int) int {
	if len(a) != len(b) {
		return max(len(a), len(b))
	}
	n := 0
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}
