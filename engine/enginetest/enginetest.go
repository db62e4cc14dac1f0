// Package enginetest is the fake engine tests run the frame loop and the config wiring
// on: the model's metadata and hash checked as an engine must, then a fixed map at once.
package enginetest

import (
	"crypto/sha256"
	"errors"
	"log/slog"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/engine"
	"github.com/adtrd/adtrd/model"
)

// Name is the fake's model.engine in tests' factories.
const Name = "fake"

// Fake stands in for a runtime where a test is about the line, not inference: it
// "infers" at once, the map Out (zeros unless the test sets it), so the test's timing
// does not depend on how heavy the demo graph is or how loaded the machine is. The
// real engine is tested by engine/tflite's, daemon's and cmd/adtrd's tests.
type Fake struct {
	In   []byte
	Out  []int8
	Meta *model.Metadata // the tensors it reports are the ones this metadata describes
}

// NewFake is a Fake for meta's model.
func NewFake(meta *model.Metadata) Fake {
	return Fake{In: make([]byte, meta.Input.Width*meta.Input.Height*3), Out: make([]int8, meta.Grid[0]*meta.Grid[1]), Meta: meta}
}

func (e *Fake) Input() []byte         { return e.In }
func (e *Fake) Invoke() error         { return nil }
func (e *Fake) Output() engine.Output { return engine.Output{Int8: e.Out} }
func (e *Fake) Close() error          { return nil }
func (e *Fake) Tensors() (in, out model.TensorInfo) {
	m := e.Meta
	return model.TensorInfo{Type: m.Input.DType, Shape: []int{1, m.Input.Height, m.Input.Width, 3}},
		model.TensorInfo{Type: m.Output.DType, Shape: []int{1, m.Grid[0], m.Grid[1]}, Scale: m.Output.Scale, ZeroPoint: m.Output.ZeroPoint}
}

// Opener builds a Fake for the bundle's model (an engine.Opener): the bundle was
// verified by engine.Load, so a truncated or foreign model is still refused.
func Opener(b *model.Bundle, _ config.Model, _ *slog.Logger) (engine.Engine, error) {
	e := NewFake(b.Meta)
	return &e, nil
}

// Open opens c's model on a Fake through engine.Load, as a factory would.
func Open(c config.Model, log *slog.Logger) (engine.Opened, error) {
	return engine.Load(Name, Opener, c, log)
}

// ErrNotRecorded: a Recorded engine was given an input it has no map for.
var ErrNotRecorded = errors.New("enginetest: no recorded map for this input")

// Recorded replays the maps a real engine produced for known inputs, keyed by the
// input bytes' SHA-256: a line on it decides as on the real engine (the demo's maps,
// recorded by the TFLite interpreter in models/demo/golden.json, which the C library
// matches exactly) without the runtime, so tests of what consumes decisions need no
// cgo. An input with no map fails its Invoke with ErrNotRecorded, as a broken
// inference would: the frame takes the fail-safe, never a made-up score. The first
// Invoke is the warm-up engine.Load runs on whatever the input holds: it succeeds
// with the map at zero.
type Recorded struct {
	Fake
	Maps   map[[sha256.Size]byte][]int8
	warmed bool
}

// Invoke looks the input up: no allocation, one SHA-256 of the input.
func (e *Recorded) Invoke() error {
	if !e.warmed {
		e.warmed = true
		return nil
	}
	m, ok := e.Maps[sha256.Sum256(e.In)]
	if !ok {
		return ErrNotRecorded
	}
	copy(e.Out, m)
	return nil
}

// OpenRecorded is an engine.Opener of Recorded engines with these maps.
func OpenRecorded(maps map[[sha256.Size]byte][]int8) engine.Opener {
	return func(b *model.Bundle, _ config.Model, _ *slog.Logger) (engine.Engine, error) {
		return &Recorded{Fake: NewFake(b.Meta), Maps: maps}, nil
	}
}
