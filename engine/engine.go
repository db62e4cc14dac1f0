// Package engine is the contract between the frame loop and an inference runtime,
// and the factory that opens the one a config names (model.engine); no cgo here.
package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/model"
	"github.com/adtrd/adtrd/score"
)

// Engine runs one model. Tensors describes the model's input and output (type, shape,
// quantisation) and is checked against its metadata when a generation is built; Input
// is the frame's packed RGB (Size*Size*3 bytes, the bytes the toolkit feeds), written
// before each Invoke (an engine whose input tensor is float converts it in Invoke);
// Output is the anomaly map of the last Invoke, int8 as quantised or float32 as real
// values, valid until the next Invoke. Input and Output need no allocation per frame.
// Close is safe twice. engine/tflite is the daemon's; tests use fakes.
type Engine interface {
	Tensors() (in, out model.TensorInfo)
	Input() []byte
	Invoke() error
	Output() Output
	Close() error
}

// Output is an engine's anomaly map: exactly one of the two is set, Grid*Grid values.
type Output struct {
	Int8    []int8    // quantised: real = scale * (q - zero point) from the tensor's quantisation
	Float32 []float32 // real values
}

// Placer is an engine that can say where its graph's ops run, in one line (LiteRT's
// GPU accelerator takes only part of a graph; the rest runs on the CPU). The log,
// check and the operators' page show it.
type Placer interface {
	Placement() string
}

// Opened is an engine with the model it runs: its metadata and the sha256 of the
// graph bytes it loaded.
type Opened struct {
	Engine
	Meta   *model.Metadata
	SHA256 string
}

// Opener builds one runtime's engine for a bundle already verified (Load does that,
// and checks the engine's tensors and runs its warm-up after): only what is the
// runtime's own (its library, delegates, threads, b.Graph loaded). Errors name the
// file and what is wrong.
type Opener func(b *model.Bundle, c config.Model, log *slog.Logger) (Engine, error)

// Load opens c's model on one engine: the bundle read and verified once
// (model.OpenBundle: metadata, hash, pin), the engine built by open, its tensors
// checked against the metadata, and one warm-up inference so the first part is not
// the slow one. On any failure the engine is closed.
func Load(name string, open Opener, c config.Model, log *slog.Logger) (_ Opened, err error) {
	b, err := model.OpenBundle(c.Path, c.MetadataPath(), c.SHA256)
	if err != nil {
		return Opened{}, err
	}
	eng, err := open(b, c, log)
	if err != nil {
		return Opened{}, err
	}
	if eng == nil {
		return Opened{}, fmt.Errorf("engine %s: opened %s without an engine", name, c.Path)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, eng.Close())
		}
	}()
	in, out := eng.Tensors()
	if err := b.Meta.CheckTensors(c.Path, c.MetadataPath(), in, out); err != nil {
		return Opened{}, err
	}
	m := b.Meta
	px := eng.Input()
	if len(px) != m.Input.Width*m.Input.Height*3 {
		return Opened{}, fmt.Errorf("engine %s: %s: input of %d bytes, want %dx%dx3", name, c.Path, len(px), m.Input.Width, m.Input.Height)
	}
	model.ReferenceFrame(px, m.Input.Width)
	if err := eng.Invoke(); err != nil {
		return Opened{}, fmt.Errorf("%s: warm-up inference on %s: %w", c.Path, name, err)
	}
	checkReference(name, c.Path, m, eng.Output(), log)
	return Opened{Engine: eng, Meta: b.Meta, SHA256: b.SHA256}, nil
}

// checkReference compares the warm-up's score of the reference frame with the one the
// export recorded for this engine, and warns when they differ or when the graph was
// not exported for this engine: its threshold was then chosen on scores this engine
// does not give. A warning, not a refusal: the line may run it knowingly (and
// `adtrd calibrate` on this engine gives a threshold that fits it).
func checkReference(name, path string, m *model.Metadata, out Output, log *slog.Logger) {
	if len(m.Engines) == 0 {
		return // an export from before references: nothing to compare
	}
	ref, ok := m.Engines[name]
	if !ok {
		names := make([]string, 0, len(m.Engines))
		for n := range m.Engines {
			names = append(names, n)
		}
		slices.Sort(names)
		log.Warn(fmt.Sprintf("model exported for %s, not for %s: its threshold was chosen on another engine's scores; calibrate on this engine (adtrd calibrate)", strings.Join(names, ", "), name), "model", path)
		return
	}
	sc, err := score.New(m.ScoreParams())
	if err != nil {
		log.Warn("reference frame not scored", "model", path, "err", err)
		return
	}
	var s float64
	if out.Int8 != nil {
		s, err = sc.ScoreInt8(out.Int8)
	} else {
		s, err = sc.ScoreFloat(out.Float32)
	}
	switch {
	case err != nil:
		log.Warn(fmt.Sprintf("the %s engine's map of the reference frame cannot be scored: %v", name, err), "model", path)
	case math.Abs(s-*ref.Score) > ref.Tolerance+model.ReferenceSlack:
		log.Warn(fmt.Sprintf("the %s engine scores the reference frame %s, its export %s (tolerance %s): this engine computes the graph otherwise, and thresholds chosen on the export's scores may not hold; calibrate on this engine (adtrd calibrate)",
			name, model.Num(s), model.Num(*ref.Score), model.Num(ref.Tolerance)), "model", path)
	default:
		log.Debug("reference frame scored as at export", "model", path, "engine", name, "score", s)
	}
}

// ErrUnknown: model.engine names no engine of this build.
var ErrUnknown = errors.New("no such engine in this build")

// Factories are the engines a build has, by model.engine name. A value, not a
// registry: the binary builds its own (New), tests pass theirs.
type Factories struct {
	byName map[string]Opener
}

// Named is one engine for New.
type Named struct {
	Name string
	Open Opener
}

// New makes the factories from named engines; an empty name, a nil opener or a
// name given twice is an error.
func New(engines ...Named) (Factories, error) {
	f := Factories{byName: make(map[string]Opener, len(engines))}
	for _, e := range engines {
		switch {
		case e.Name == "" || e.Open == nil:
			return Factories{}, fmt.Errorf("engine: %q: want a name and an opener", e.Name)
		case f.byName[e.Name] != nil:
			return Factories{}, fmt.Errorf("engine: %q given twice", e.Name)
		}
		f.byName[e.Name] = e.Open
	}
	return f, nil
}

// One is the factories of a single engine (nothing to refuse: one name, given once).
func One(name string, open Opener) Factories {
	return Factories{byName: map[string]Opener{name: open}}
}

// Names are the engines, sorted.
// Has says whether the factories have an engine called name.
func (f Factories) Has(name string) bool { return f.byName[name] != nil }

func (f Factories) Names() []string {
	names := make([]string, 0, len(f.byName))
	for n := range f.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Open opens cfg's model on the engine model.engine names; an unknown name is
// ErrUnknown, said with the key's line in cfg's file.
func (f Factories) Open(cfg config.Config, log *slog.Logger) (Opened, error) {
	open := f.byName[cfg.Model.Engine]
	if open == nil {
		return Opened{}, fmt.Errorf("%s: %q: %w (this build has: %s)", cfg.Where("model.engine"), cfg.Model.Engine, ErrUnknown, strings.Join(f.Names(), ", "))
	}
	return Load(cfg.Model.Engine, open, cfg.Model, log)
}
