// Package engine is the contract between the frame loop and an inference runtime,
// and the factory that opens the one a config names (model.engine); no cgo here.
package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/model"
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

// Opened is an engine with the model it runs: its metadata and the sha256 of the
// graph bytes it loaded.
type Opened struct {
	Engine
	Meta   *model.Metadata
	SHA256 string
}

// Opener opens the model c names on one runtime, with a warm-up inference, and
// returns it with its metadata and hash; errors name the file and what is wrong.
type Opener func(c config.Model, log *slog.Logger) (Opened, error)

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
	o, err := open(cfg.Model, log)
	if err != nil {
		return Opened{}, err
	}
	if o.Engine == nil || o.Meta == nil {
		return Opened{}, fmt.Errorf("engine %s: opened %s without an engine or metadata", cfg.Model.Engine, cfg.Model.Path)
	}
	return o, nil
}
