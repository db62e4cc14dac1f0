package daemon_test

import (
	"errors"
	"log/slog"
	"math"
	"strings"
	"testing"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/engine"
	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/internal/testlib"
	"github.com/adtrd/adtrd/model"
)

// floatEngine stands in for a float engine (ONNX Runtime, a GPU delegate): a real-
// valued map of one value everywhere, described by the demo's ONNX metadata.
type floatEngine struct {
	fakeEngine
	m []float32
}

func (e *floatEngine) Output() engine.Output { return engine.Output{Float32: e.m} }

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
		decision events.Decision
		failed   bool // the frame's inference failed (the fail-safe decided)
	}{
		// a flat map far below the demo threshold (10.071)
		{"pass", 5, events.Pass, false},
		// a flat map above it
		{"reject", 30, events.Reject, false},
		// a broken float model: the fail-safe (reject by default), never a pass
		{"nan", float32(math.NaN()), events.Reject, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng, meta := newFloat(t, tc.v)
			r := newRig(t, eng, meta, replay(t, testlib.Demo("frames"), 0), rigSet{}, 0)
			sum := r.run(t)
			if sum.Frames == 0 || len(r.recs) != int(sum.Frames) {
				t.Fatalf("%d frames, %d records", sum.Frames, len(r.recs))
			}
			for _, rec := range r.recs {
				if rec.Decision != tc.decision || (rec.Reason == events.InferFailure) != tc.failed {
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

// Decision records print the score and threshold to 4 decimals (a map step is about
// 0.06 of score), while the decision uses the full value: a score 3e-5 above the
// threshold is a reject although both print alike.
func TestRecordsRoundScoresToFourDecimals(t *testing.T) {
	const v = 7.123456789
	eng, meta := newFloat(t, v)
	var logs logBuf
	r := newRig(t, eng, meta, replay(t, testlib.Demo("frames"), 0), rigSet{Log: slog.New(slog.NewTextHandler(&logs, nil)), Threshold: v - 3e-5}, 0)
	r.run(t)
	out := logs.String()
	if !strings.Contains(out, "score=7.1235 threshold=7.1234 ") || strings.Contains(out, "7.12345") {
		t.Fatalf("records:\n%s", out)
	}
	for _, rec := range r.recs {
		if rec.Decision != events.Reject {
			t.Fatalf("%s: %v at score %v over threshold %v", rec.Name, rec.Decision, rec.Score, v-3e-5)
		}
	}
}

func TestRound4(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{
		{22.523316, 22.5233}, // a demo score
		{10.07083049028124, 10.0708},
		{0.00004, 0},           // below the last digit
		{-1.23456, -1.2346},    // never a score, but rounds symmetrically
		{1e9 + 0.5, 1e9 + 0.5}, // large values keep what a float64 holds
	} {
		if got := events.Round4(tc.in); got != tc.want {
			t.Errorf("Round4(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
