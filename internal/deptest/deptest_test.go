// Package deptest keeps cgo inside the engine package: everything else must build
// with CGO_ENABLED=0 (after tailscale's deptest).
package deptest

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/adtrd/adtrd/internal/testlib"
)

// Packages allowed to contain cgo files.
var cgoAllowed = map[string]bool{"github.com/adtrd/adtrd/tflite": true}

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
