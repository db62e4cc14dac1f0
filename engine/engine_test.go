package engine_test

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/engine"
)

func opener(err error) engine.Opener {
	return func(config.Model, *slog.Logger) (engine.Opened, error) { return engine.Opened{}, err }
}

// New refuses what would make a name ambiguous or empty; Names lists the rest.
func TestNewRefusesDuplicatesAndBlanks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		engines []engine.Named
		err     string // "": accepted
	}{
		// two engines, listed sorted
		{"two", []engine.Named{{Name: "tflite", Open: opener(nil)}, {Name: "litert", Open: opener(nil)}}, ""},
		// the same name twice: which one runs would depend on the order
		{"duplicate", []engine.Named{{Name: "tflite", Open: opener(nil)}, {Name: "tflite", Open: opener(nil)}}, `engine: "tflite" given twice`},
		// no name
		{"blank", []engine.Named{{Open: opener(nil)}}, `engine: "": want a name and an opener`},
		// no opener
		{"no opener", []engine.Named{{Name: "x"}}, `engine: "x": want a name and an opener`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := engine.New(tc.engines...)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("New: %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(f.Names(), []string{"litert", "tflite"}) {
				t.Fatalf("New: %v, names %v", err, f.Names())
			}
		})
	}
}

// Open goes to the engine model.engine names, passes its error through, refuses an
// engine that returns nothing, and names the key for an engine the build lacks.
func TestOpenByName(t *testing.T) {
	broken := errors.New("model: m.tflite: truncated")
	f, err := engine.New(engine.Named{Name: "broken", Open: opener(broken)}, engine.Named{Name: "empty", Open: opener(nil)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Model.Engine = "broken"
	if _, err := f.Open(cfg, slog.New(slog.DiscardHandler)); !errors.Is(err, broken) {
		t.Fatalf("broken engine: %v", err)
	}
	cfg.Model.Engine = "empty"
	if _, err := f.Open(cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "without an engine or metadata") {
		t.Fatalf("empty engine: %v", err)
	}
	cfg.Model.Engine = "tflite"
	if _, err := f.Open(cfg, slog.New(slog.DiscardHandler)); !errors.Is(err, engine.ErrUnknown) || !strings.Contains(err.Error(), `model.engine: "tflite": no such engine in this build (this build has: broken, empty)`) {
		t.Fatalf("unknown engine: %v", err)
	}
}
