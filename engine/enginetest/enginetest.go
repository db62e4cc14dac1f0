// Package enginetest is the fake engine tests run the frame loop and the config wiring
// on: the model's metadata and hash checked as an engine must, then a fixed map at once.
package enginetest

import (
	"fmt"
	"log/slog"
	"os"

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

// Open opens c's model on a Fake (an engine.Opener): the metadata loaded and the
// graph's hash checked against it, so a truncated or foreign model is still refused.
func Open(c config.Model, _ *slog.Logger) (engine.Opened, error) {
	meta, err := model.Load(c.MetadataPath())
	if err != nil {
		return engine.Opened{}, err
	}
	data, err := os.ReadFile(c.Path)
	if err != nil {
		return engine.Opened{}, fmt.Errorf("%w: %v", model.ErrMetadata, err)
	}
	sum, err := meta.CheckGraph(c.Path, data)
	if err != nil {
		return engine.Opened{}, err
	}
	e := NewFake(meta)
	return engine.Opened{Engine: &e, Meta: meta, SHA256: sum}, nil
}
