// Package deptest keeps the dependency direction: cgo inside the engine package, and
// the consumers of events off the frame loop and the engines (after tailscale's
// deptest: a list of what each package must never pull in, with the reason).
package deptest

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/adtrd/adtrd/internal/testlib"
)

// Packages allowed to contain cgo files: the engines' bindings to C runtimes (the
// ONNX Runtime engine's cgo is in its module, github.com/yalue/onnxruntime_go).
var cgoAllowed = map[string]bool{"github.com/adtrd/adtrd/tflite": true, "github.com/adtrd/adtrd/engine/litert": true}

func TestOnlyEnginesUseCgo(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{len .CgoFiles}}", "./...")
	cmd.Dir = testlib.Root()
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, n, _ := strings.Cut(line, " ")
		if n != "0" && !cgoAllowed[pkg] {
			t.Errorf("%s has cgo files; only %v may", pkg, cgoAllowed)
		}
	}
}

func TestBuildsWithoutCgo(t *testing.T) {
	for _, goos := range []string{"linux", "darwin"} {
		cmd := exec.Command("go", "build", "-o", os.DevNull, "./...")
		cmd.Dir = testlib.Root()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("GOOS=%s CGO_ENABLED=0 go build: %v\n%s", goos, err, out)
		}
	}
}

const mod = "github.com/adtrd/adtrd/"

// Why a package must stay out of another's build.
const (
	whyDaemon   = "the frame loop: it links the engines and the pins; consumers of events read the pipeline through their own small interfaces"
	whyTFLite   = "the TFLite engine is cgo: consumers of events must build with CGO_ENABLED=0"
	whyHostGPIO = "the real-pin driver (periph host, Linux ioctls): only the daemon's binary drives pins"
	whyCapture  = "the camera (a GStreamer child) and replay: an event carries the decision, not the frame source"
	whyConfig   = "config is what a file says, checked: what it becomes (engines, sources, pins, the frame loop) is built from it by app"
	whyEngines  = "the frame loop runs whatever engine the factory opens (engine.Engine); which engines exist is the binary's choice (cmd/adtrd/engines.go)"
)

// rules lists, per package, what it must never pull in (directly or not), with the
// reason; nocgo also forbids any non-standard package with cgo files in its build.
var rules = []struct {
	pkg   string
	nocgo bool
	bad   map[string]string
}{
	{"events", true, map[string]string{"daemon": whyDaemon, "tflite": whyTFLite, "gpio": "events is a leaf: the pins' types stay out of the event vocabulary", "gpio/hostgpio": whyHostGPIO, "capture": whyCapture, "config": "events is a leaf: a reload's config is not an event's"}},
	{"web", true, map[string]string{"daemon": whyDaemon, "tflite": whyTFLite, "gpio/hostgpio": whyHostGPIO, "capture": whyCapture}},
	{"metrics", true, map[string]string{"daemon": whyDaemon, "tflite": whyTFLite, "gpio/hostgpio": whyHostGPIO, "capture": whyCapture}},
	{"record", true, map[string]string{"daemon": whyDaemon, "tflite": whyTFLite, "gpio/hostgpio": whyHostGPIO, "capture": whyCapture}},
	{"mqtt", true, map[string]string{"daemon": whyDaemon, "tflite": whyTFLite, "gpio/hostgpio": whyHostGPIO, "capture": whyCapture}},
	{"config", true, map[string]string{"capture": "config reads a camera's description (capture/spec), not the camera: the frame sources are built from it by app", "daemon": whyConfig, "engine": whyConfig, "app": whyConfig, "gpio": whyConfig}},
	{"capture/spec", true, map[string]string{"capture": "the description is below what runs it", "config": "config reads the description, not the other way"}},
	{"daemon", true, map[string]string{"tflite": whyEngines, "engine/tflite": whyEngines, "engine/onnxruntime": whyEngines, "engine/litert": whyEngines, "gpio/hostgpio": "the frame loop drives pins through the tracker; which backend is the app's choice (app.OpenLine)", "app": "app builds the frame loop's objects from a config: the loop must not reach back"}},
	{"engine", true, map[string]string{"daemon": "the contract is below the frame loop: engines must not depend on it", "tflite": whyEngines, "engine/tflite": whyEngines, "engine/onnxruntime": whyEngines, "engine/litert": whyEngines}},
	{"engine/vet", true, map[string]string{"daemon": "vetting is below the frame loop (the reloader calls it through its own interface)", "tflite": whyEngines, "engine/tflite": whyEngines, "engine/onnxruntime": whyEngines, "engine/litert": whyEngines}},
	{"internal/child", true, map[string]string{"capture": "child supervision is shared by the camera and the vetting child: it knows neither", "engine": "child supervision is shared by the camera and the vetting child: it knows neither"}},
}

// Each rule, checked on the build with cgo on (the daemon's), where a cgo package
// would show.
func TestForbiddenDeps(t *testing.T) {
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}} {{len .CgoFiles}}", "./"+r.pkg)
			cmd.Dir = testlib.Root()
			cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go list -deps ./%s: %v", r.pkg, err)
			}
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				f := strings.Fields(line)
				if len(f) != 3 {
					t.Fatalf("go list line %q", line)
				}
				dep, std, ncgo := f[0], f[1] == "true", f[2]
				if why, ok := r.bad[strings.TrimPrefix(dep, mod)]; ok && strings.HasPrefix(dep, mod) {
					t.Errorf("%s pulls in %s, which it must not: %s", r.pkg, dep, why)
				}
				if r.nocgo && !std && ncgo != "0" {
					t.Errorf("%s pulls in %s, which has cgo files: %s must build with CGO_ENABLED=0", r.pkg, dep, r.pkg)
				}
			}
		})
	}
}

// The consumers of events build with cgo off, whatever their rules say.
func TestConsumersBuildWithoutCgo(t *testing.T) {
	args := []string{"build", "-o", os.DevNull}
	for _, r := range rules {
		args = append(args, "./"+r.pkg)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = testlib.Root()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// The consumers of events are tested without cgo too: their tests run the line on a
// fake or recorded engine (engine/enginetest, internal/demoline), never the TFLite
// runtime, so `CGO_ENABLED=0 go test` of them passes on a machine with no C library.
func TestConsumersTestWithoutCgo(t *testing.T) {
	args := []string{"list", "-deps", "-test", "-f", "{{.ImportPath}}|{{.Standard}}|{{len .CgoFiles}}"}
	for _, p := range []string{"events", "web", "metrics", "record", "mqtt"} {
		args = append(args, "./"+p)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = testlib.Root()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v", strings.Join(args, " "), err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|") // a test variant's import path has spaces
		if len(f) != 3 {
			t.Fatalf("go list line %q", line)
		}
		if f[1] != "true" && f[2] != "0" {
			t.Errorf("the tests of events, web, metrics, record or mqtt pull in %s, which has cgo files: give them a fake engine (engine/enginetest) instead", f[0])
		}
	}
}
