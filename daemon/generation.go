package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"math"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/gpio"
	"github.com/adtrd/adtrd/score"
)

// ErrThreshold reports a threshold that is not a positive finite score.
var ErrThreshold = errors.New("bad threshold")

// Generation is everything a config decides about scoring a frame: the warmed-up
// engine, its scorer, the threshold and the fail-safe. The pipeline holds exactly one
// and swaps to the next between two frames; a generation is never changed once built.
type Generation struct {
	N         uint64
	Config    config.Config
	Engine    Engine
	Scorer    *score.Scorer
	Threshold float64
	FailSafe  gpio.FailSafe
	ModelSHA  string // of the model bytes the engine runs
}

// BuildGeneration opens cfg's model (with a warm-up inference) and its scorer.
func BuildGeneration(n uint64, cfg config.Config, log *slog.Logger) (*Generation, error) {
	eng, err := OpenTFLite(cfg.Model, log)
	if err != nil {
		return nil, err
	}
	sc, err := score.New(eng.Meta.ScoreParams())
	if err != nil {
		return nil, errors.Join(err, eng.Close())
	}
	thr := cfg.Threshold
	if thr == 0 {
		thr = eng.Meta.Threshold
	}
	// config and model.Load refuse these already; a threshold that is not a positive
	// finite number would silently pass every part (NaN compares false), so check here too.
	if !(thr > 0) || math.IsInf(thr, 0) {
		return nil, errors.Join(fmt.Errorf("%w: threshold %v: want a positive finite score", ErrThreshold, thr), eng.Close())
	}
	return &Generation{N: n, Config: cfg, Engine: eng, Scorer: sc, Threshold: thr, FailSafe: FailSafe(cfg.FailSafe), ModelSHA: eng.SHA256}, nil
}

// Close frees the engine; safe twice.
func (g *Generation) Close() error {
	if g == nil || g.Engine == nil {
		return nil
	}
	err := g.Engine.Close()
	g.Engine = nil
	return err
}

// tflite is the engine as a TFLiteEngine, or nil.
func (g *Generation) tflite() *TFLiteEngine {
	e, _ := g.Engine.(*TFLiteEngine)
	return e
}
