package engine_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/engine"
	"github.com/adtrd/adtrd/internal/testlib"
	"github.com/adtrd/adtrd/model"
)

func opener(err error) engine.Opener {
	return func(*model.Bundle, config.Model, *slog.Logger) (engine.Engine, error) { return nil, err }
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
	cfg.Model.Path = testlib.Demo("adtr.tflite")
	cfg.Model.Engine = "broken"
	if _, err := f.Open(cfg, slog.New(slog.DiscardHandler)); !errors.Is(err, broken) {
		t.Fatalf("broken engine: %v", err)
	}
	cfg.Model.Engine = "empty"
	if _, err := f.Open(cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "without an engine") {
		t.Fatalf("empty engine: %v", err)
	}
	cfg.Model.Engine = "tflite"
	if _, err := f.Open(cfg, slog.New(slog.DiscardHandler)); !errors.Is(err, engine.ErrUnknown) || !strings.Contains(err.Error(), `model.engine: "tflite": no such engine in this build (this build has: broken, empty)`) {
		t.Fatalf("unknown engine: %v", err)
	}
}

// Load verifies the bundle before any engine is built, checks the engine's tensors
// and runs the warm-up, and closes the engine when a check after its opening fails.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	graph, _ := os.ReadFile(testlib.Demo("adtr.tflite"))
	meta, _ := os.ReadFile(testlib.Demo("adtr.tflite.json"))
	put := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	good := put("good.tflite", graph)
	put("good.tflite.json", meta)
	cut := put("cut.tflite", graph[:len(graph)/2])
	put("cut.tflite.json", meta)
	failing := errors.New("invoke failed")
	for _, tc := range []struct {
		name   string
		path   string
		pin    string
		eng    func(m *model.Metadata) *fake
		want   string // in the error; "" for none
		closed bool   // the engine was built and must be closed
	}{
		// the demo's bundle on an engine whose tensors are the metadata's
		{"good", good, "", func(m *model.Metadata) *fake { return newFake(m) }, "", false},
		// a graph cut short: refused by its hash before any engine is built
		{"truncated", cut, "", nil, "sha256", false},
		// a pin that is not this graph's
		{"pinned", good, strings.Repeat("0", 64), nil, "is not the pinned model.sha256", false},
		// an engine whose output is not the metadata's grid
		{"tensors", good, "", func(m *model.Metadata) *fake { f := newFake(m); f.outShape = []int{1, 7, 7}; return f }, "output tensor is int8[1 7 7]", true},
		// the warm-up inference fails
		{"warm-up", good, "", func(m *model.Metadata) *fake { f := newFake(m); f.err = failing; return f }, "warm-up inference on test: invoke failed", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var built *fake
			open := func(b *model.Bundle, _ config.Model, _ *slog.Logger) (engine.Engine, error) {
				if tc.eng == nil {
					t.Fatal("an engine was built for a bundle that should have been refused")
				}
				built = tc.eng(b.Meta)
				return built, nil
			}
			o, err := engine.Load("test", open, config.Model{Path: tc.path, SHA256: tc.pin}, slog.New(slog.DiscardHandler))
			switch {
			case tc.want == "" && (err != nil || o.SHA256 != testlib.LoadGolden(t).SHA256 || o.Meta == nil):
				t.Fatalf("Load: %v, sha256 %q", err, o.SHA256)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Load: %v, want %q", err, tc.want)
			}
			if tc.closed != (built != nil && built.closed) {
				t.Fatalf("engine closed: %v, want %v", built != nil && built.closed, tc.closed)
			}
		})
	}
}

type fake struct {
	meta     *model.Metadata
	in       []byte
	out      []int8
	outShape []int
	err      error
	closed   bool
}

func newFake(m *model.Metadata) *fake {
	return &fake{meta: m, in: make([]byte, m.Input.Width*m.Input.Height*3), out: make([]int8, m.Grid[0]*m.Grid[1]), outShape: []int{1, m.Grid[0], m.Grid[1]}}
}

func (f *fake) Tensors() (in, out model.TensorInfo) {
	return model.TensorInfo{Type: f.meta.Input.DType, Shape: []int{1, f.meta.Input.Height, f.meta.Input.Width, 3}},
		model.TensorInfo{Type: f.meta.Output.DType, Shape: f.outShape, Scale: f.meta.Output.Scale, ZeroPoint: f.meta.Output.ZeroPoint}
}
func (f *fake) Input() []byte         { return f.in }
func (f *fake) Invoke() error         { return f.err }
func (f *fake) Output() engine.Output { return engine.Output{Int8: f.out} }
func (f *fake) Close() error          { f.closed = true; return nil }

// Load scores the warm-up's reference frame and warns when the engine's score is not
// the one the export recorded for it, or when the graph was not exported for it; an
// export with no references, or the same score, is quiet.
func TestLoadComparesTheReferenceScore(t *testing.T) {
	graph, _ := os.ReadFile(testlib.Demo("adtr.tflite"))
	raw, _ := os.ReadFile(testlib.Demo("adtr.tflite.json"))
	// the fake's map is all zeros: (0 - (-128)) x 0.125 = 16 everywhere, score 16
	for _, tc := range []struct {
		name    string
		engines map[string]any // nil: no "engines" at all
		want    string         // in the log; "" for no warning
	}{
		// the score the export recorded
		{"same", map[string]any{"test": map[string]any{"reference_score": 16.0, "tolerance": 0}}, ""},
		// within the recorded tolerance
		{"within tolerance", map[string]any{"test": map[string]any{"reference_score": 16.1, "tolerance": 0.2}}, ""},
		// one map step and more away: this engine computes the graph otherwise
		{"differs", map[string]any{"test": map[string]any{"reference_score": 16.125, "tolerance": 0}}, "the test engine scores the reference frame 16.0000, its export 16.1250 (tolerance 0.0000)"},
		// exported for other engines only
		{"not exported for it", map[string]any{"other": map[string]any{"reference_score": 16.0, "tolerance": 0}, "more": map[string]any{"reference_score": 16.0, "tolerance": 0}}, "model exported for more, other, not for test"},
		// an export from before references
		{"no references", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			json.Unmarshal(raw, &m)
			delete(m, "engines")
			if tc.engines != nil {
				m["engines"] = tc.engines
			}
			mb, _ := json.Marshal(m)
			dir := t.TempDir()
			path := filepath.Join(dir, "m.tflite")
			os.WriteFile(path, graph, 0o644)
			os.WriteFile(path+".json", mb, 0o644)
			var logs strings.Builder
			open := func(b *model.Bundle, _ config.Model, _ *slog.Logger) (engine.Engine, error) {
				return newFake(b.Meta), nil
			}
			if _, err := engine.Load("test", open, config.Model{Path: path}, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
				t.Fatal(err)
			}
			warned := strings.Contains(logs.String(), "level=WARN")
			if tc.want == "" && warned || tc.want != "" && !strings.Contains(logs.String(), tc.want) {
				t.Fatalf("log:\n%s\nwant %q", logs.String(), tc.want)
			}
		})
	}
}
