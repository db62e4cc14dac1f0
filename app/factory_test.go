package app_test

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/adtrd/adtrd/app"
	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/engine"
	"github.com/adtrd/adtrd/engine/enginetest"
	"github.com/adtrd/adtrd/internal/testlib"
	"github.com/adtrd/adtrd/model"
)

// fakeOpener is enginetest.Opener, counting the engines it builds.
func fakeOpener(opened *int) engine.Opener {
	return func(b *model.Bundle, c config.Model, log *slog.Logger) (engine.Engine, error) {
		*opened++
		return enginetest.Opener(b, c, log)
	}
}

// A config file's model.engine picks the engine from the factories the daemon is
// given: a fake engine swapped in by name runs the generation, a reload that names
// another engine of the factories switches to it, and a name the build lacks is
// refused with the key's line, the running generation kept.
func TestEngineComesFromTheFactoryTheConfigNames(t *testing.T) {
	var fakes, others int
	f, err := engine.New(engine.Named{Name: "fake", Open: fakeOpener(&fakes)}, engine.Named{Name: "other_fake", Open: fakeOpener(&others)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "line.yaml")
	write := func(name string) {
		os.WriteFile(cfg, []byte("model:\n  engine: "+name+"\n  path: "+testlib.Demo("adtr.tflite")+"\ncapture:\n  replay:\n    path: "+testlib.Demo("frames")+"\n"), 0o644)
	}
	write("fake")
	rl, gen, err := daemon.NewReloader(cfg, app.Build(f), nil, nil, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer rl.Close()
	if _, ok := gen.Engine.(*enginetest.Fake); !ok || fakes != 1 || gen.Config.Model.Engine != "fake" {
		t.Fatalf("generation 1 runs %T (fake opened %d times)", gen.Engine, fakes)
	}
	write("other_fake")
	if err := rl.Reload("test"); err != nil || others != 1 || rl.Config().Model.Engine != "other_fake" || rl.Status().Generation != 2 {
		t.Fatalf("reload to other_fake: %v (opened %d)", err, others)
	}
	write("litert")
	err = rl.Reload("test")
	want := `line 2: model.engine: "litert": no such engine in this build (this build has: fake, other_fake)`
	if !errors.Is(err, engine.ErrUnknown) || !strings.Contains(err.Error(), want) {
		t.Fatalf("unknown engine: %v, want %q", err, want)
	}
	if rl.Config().Model.Engine != "other_fake" || rl.Status().Generation != 2 {
		t.Fatalf("after the refused reload the line runs %q, generation %d", rl.Config().Model.Engine, rl.Status().Generation)
	}
}
