package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"math"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/engine"
	"github.com/adtrd/adtrd/gpio"
	"github.com/adtrd/adtrd/model"
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
	Engine    engine.Engine
	Meta      *model.Metadata // the model's, checked against the engine's tensors
	Scorer    *score.Scorer
	Threshold float64
	FailSafe  gpio.FailSafe
	ModelSHA  string // of the model bytes the engine runs
	// Placement is where the engine said it runs the graph's ops (engine.Placer), read
	// once at build: consumers read it while a reload may be closing this generation.
	Placement string
}

// Builder builds generation n from cfg; the Reloader calls it for every reload.
// app.Build(engines) is the daemon's; tests give one with a fake engine.
type Builder func(n uint64, cfg config.Config, log *slog.Logger) (*Generation, error)

// NewGeneration completes a generation around an opened engine: the scorer from meta
// and the threshold (the config's, or the metadata's when the config says 0). On
// error the engine is closed.
func NewGeneration(n uint64, cfg config.Config, eng engine.Engine, meta *model.Metadata, sha string) (*Generation, error) {
	in, out := eng.Tensors()
	if err := meta.CheckTensors(cfg.Model.Path, cfg.Model.MetadataPath(), in, out); err != nil {
		return nil, errors.Join(err, eng.Close())
	}
	sc, err := score.New(meta.ScoreParams())
	if err != nil {
		return nil, errors.Join(err, eng.Close())
	}
	thr := cfg.Threshold
	if thr == 0 {
		thr = meta.Threshold
	}
	// config and model.Load refuse these already; a threshold that is not a positive
	// finite number would silently pass every part (NaN compares false), so check here too.
	if !(thr > 0) || math.IsInf(thr, 0) {
		return nil, errors.Join(fmt.Errorf("%w: threshold %v: want a positive finite score", ErrThreshold, thr), eng.Close())
	}
	g := &Generation{N: n, Config: cfg, Engine: eng, Meta: meta, Scorer: sc, Threshold: thr, FailSafe: FailSafe(cfg.FailSafe), ModelSHA: sha}
	if pl, ok := eng.(engine.Placer); ok {
		g.Placement = pl.Placement()
	}
	return g, nil
}

// CheckThreshold is what the threshold does with this model (model.CheckThreshold),
// said with where it comes from: the config's key and line, or the metadata's file.
// An error (ErrThreshold and model.ErrUnreachable) is a threshold no score can
// exceed, which would pass every defect without a word: run, reload and check refuse
// it. A warning is one under the held-out good parts' scores (they would be
// rejected: loud on the line, and a threshold calibrated on the line's own images may
// rightly sit there) or far above them: logged, the generation still runs.
func (g *Generation) CheckThreshold() (warning string, err error) {
	where, hint := g.Config.Where("threshold"), ""
	if g.Config.Threshold == 0 {
		where = g.Config.Model.MetadataPath() + ": threshold"
		hint = " (the config's threshold is 0: the metadata's is used; set threshold: to override it)"
	}
	w, err := g.Meta.CheckThreshold(g.Threshold)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w%s", ErrThreshold, where, err, hint)
	}
	if w != "" {
		w = where + ": " + w + hint
	}
	return w, nil
}

// Score scores the engine's last output, whichever type its tensor is (the
// scorer's Map then holds its pixel map).
func (g *Generation) Score(o engine.Output) (float64, error) {
	if o.Float32 != nil {
		return g.Scorer.ScoreFloat(o.Float32)
	}
	return g.Scorer.ScoreInt8(o.Int8)
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

// FailSafe maps the config's fail-safe onto the tracker's.
func FailSafe(f config.FailSafe) gpio.FailSafe {
	switch f {
	case config.FailSafePass:
		return gpio.FailPass
	case config.FailSafeAlarm:
		return gpio.FailAlarm
	}
	return gpio.FailReject
}
