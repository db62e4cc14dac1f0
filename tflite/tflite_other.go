//go:build !linux || !cgo

package tflite

// Stubs: the engine needs Linux and cgo; everything else in the daemon still builds.

type Library struct{}

func Open(path string) (*Library, error) { return nil, ErrUnsupported }

func (l *Library) Version() string { return "" }
func (l *Library) Path() string    { return "" }
func (l *Library) Close() error    { return nil }

func (l *Library) NewInterpreter(modelPath string, opts Options) (*Interpreter, error) {
	return nil, ErrUnsupported
}

func (l *Library) NewInterpreterFromBytes(name string, data []byte, opts Options) (*Interpreter, error) {
	return nil, ErrUnsupported
}

type Interpreter struct{}

type Tensor struct {
	Name  string
	Type  TensorType
	Shape []int
	Quant Quant
}

func (t *Tensor) Bytes() []byte { return nil }

func (it *Interpreter) Inputs() []Tensor    { return nil }
func (it *Interpreter) Outputs() []Tensor   { return nil }
func (it *Interpreter) Warnings() []Warning { return nil }
func (it *Interpreter) Printed() []string   { return nil }
func (it *Interpreter) Invoke() error       { return ErrUnsupported }
func (it *Interpreter) Close() error        { return nil }
