package daemon_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
)

// vetting is a ModelVetter that records the models it was asked about and answers
// with its err; during, if set, runs while it "vets" (a file replaced meanwhile).
type vetting struct {
	mu     sync.Mutex
	paths  []string
	err    error
	during func()
}

func (v *vetting) Vet(_ context.Context, m config.Model) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.paths = append(v.paths, filepath.Base(m.Path))
	if v.during != nil {
		v.during()
		v.during = nil
	}
	return v.err
}

func (v *vetting) asked() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return strings.Join(v.paths, " ")
}

// A reload that changes the model (the graph, its metadata, or its config section)
// is vetted in a child before the daemon loads it, and the child's refusal keeps the
// running generation; a change elsewhere (the threshold) loads nothing new and is
// not vetted.
func TestReloadVetsAChangedModelOnly(t *testing.T) {
	d := newReloadDir(t)
	os.WriteFile(d.cfg, d.body("a.tflite", 10.5, ""), 0o644)
	rl, _, err := daemon.NewReloader(d.cfg, fakeBuild, nil, nil, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer rl.Close()
	v := &vetting{}
	rl.VetWith(v)
	refused := errors.New("model b.tflite: the tflite engine crashed loading it (SIGSEGV): refused in a vetting child")
	for _, step := range []struct {
		name    string
		write   func()
		verdict error
		during  func()
		asked   string // the models vetted so far
		gen     uint64 // the generation running after it
		want    string // in the reload's error
	}{
		// the threshold alone: no model loaded, none vetted
		{"threshold", func() { os.WriteFile(d.cfg, d.body("a.tflite", 10.6, ""), 0o644) }, nil, nil, "", 2, ""},
		// another model that its child refuses: not loaded, generation 2 runs on
		{"refused", func() { os.WriteFile(d.cfg, d.body("b.tflite", 10.6, ""), 0o644) }, refused, nil, "b.tflite", 2, refused.Error()},
		// the same model once its child passes it
		{"passed", func() { os.WriteFile(d.cfg, d.body("b.tflite", 10.6, "\n"), 0o644) }, nil, nil, "b.tflite b.tflite", 3, ""},
		// the model section changed (threads), same files: vetted again
		{"section", func() {
			os.WriteFile(d.cfg, []byte(strings.Replace(string(d.body("b.tflite", 10.6, "")), "threads: 1", "threads: 2", 1)), 0o644)
		}, nil, nil, "b.tflite b.tflite b.tflite", 4, ""},
		// the metadata file alone: vetted
		{"metadata", func() { d.putModel("b.tflite", d.models["b.tflite"], 9.7) }, nil, nil, "b.tflite b.tflite b.tflite b.tflite", 5, ""},
		// the graph replaced while its child had it: what would load is not what was vetted
		{"replaced", func() { os.WriteFile(d.cfg, d.body("a.tflite", 10.6, ""), 0o644) }, nil,
			func() { d.putModel("a.tflite", append(append([]byte(nil), d.graph...), make([]byte, 32)...), 10.1) },
			"b.tflite b.tflite b.tflite b.tflite a.tflite", 5, "changed while it was vetted"},
	} {
		step.write()
		v.mu.Lock()
		v.err, v.during = step.verdict, step.during
		v.mu.Unlock()
		err := rl.Reload(step.name)
		if (step.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), step.want)) {
			t.Fatalf("%s: reload: %v, want %q", step.name, err, step.want)
		}
		if got := v.asked(); got != step.asked {
			t.Fatalf("%s: vetted %q, want %q", step.name, got, step.asked)
		}
		if s := rl.Status(); s.Generation != step.gen {
			t.Fatalf("%s: generation %d, want %d", step.name, s.Generation, step.gen)
		}
	}
}
