package daemon_test

import (
	"errors"
	"math"
	"testing"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/internal/testlib"
	"github.com/adtrd/adtrd/model"
)

// floatEngine stands in for a float engine (ONNX Runtime, a GPU delegate): a real-
// valued map of one value everywhere, described by the demo's ONNX metadata.
type floatEngine struct {
	fakeEngine
	m []float32
}

func (e *floatEngine) Output() daemon.Output { return daemon.Output{Float32: e.m} }

func newFloat(t *testing.T, v float32) (*floatEngine, *model.Metadata) {
	meta, err := model.Load(testlib.Demo("adtr.onnx.json"))
	if err != nil {
		t.Fatal(err)
	}
	e := &floatEngine{fakeEngine: newFake(meta), m: make([]float32, meta.Grid[0]*meta.Grid[1])}
	for i := range e.m {
		e.m[i] = v
	}
	return e, meta
}

// A float engine plugs in through the same Engine contract, with no type assertion:
// its map is scored as real values, a flat map of v scores v, and a NaN map is an
// inference failure that takes the fail-safe, never a pass.
func TestFloatEngineThroughThePipeline(t *testing.T) {
	for _, tc := range []struct {
		name     string
		v        float32
		decision daemon.Decision
		failed   bool // the frame's inference failed (the fail-safe decided)
	}{
		// a flat map far below the demo threshold (10.071)
		{"pass", 5, daemon.Pass, false},
		// a flat map above it
		{"reject", 30, daemon.Reject, false},
		// a broken float model: the fail-safe (reject by default), never a pass
		{"nan", float32(math.NaN()), daemon.Reject, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng, meta := newFloat(t, tc.v)
			r := newRig(t, eng, meta, replay(t, testlib.Demo("frames"), 0), rigSet{}, 0)
			sum := r.run(t)
			if sum.Frames == 0 || len(r.recs) != int(sum.Frames) {
				t.Fatalf("%d frames, %d records", sum.Frames, len(r.recs))
			}
			for _, rec := range r.recs {
				if rec.Decision != tc.decision || (rec.Reason == daemon.InferFailure) != tc.failed {
					t.Fatalf("%s: decision %v reason %v (err %v), want %v", rec.Name, rec.Decision, rec.Reason, rec.Err, tc.decision)
				}
				if !tc.failed && math.Abs(rec.Score-float64(tc.v)) > 1e-4 {
					t.Fatalf("%s: score %v, want %v", rec.Name, rec.Score, tc.v)
				}
			}
		})
	}
}

// NewGeneration checks every engine's tensors against the metadata, so an engine
// whose model is not the one described is refused by name before any frame.
func TestNewGenerationChecksTheEnginesTensors(t *testing.T) {
	eng, _ := newFloat(t, 1)
	int8Meta, err := model.Load(testlib.Demo("adtr.tflite.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	_, err = daemon.NewGeneration(2, cfg, eng, int8Meta, "x")
	if !errors.Is(err, model.ErrMetadata) {
		t.Fatalf("a float engine under int8 metadata: %v", err)
	}
}
