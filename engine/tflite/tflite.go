// Package tflite is the engine over the TFLite C library (the tflite binding): the
// model's metadata, hash and tensors checked, a warm-up inference, model.engine tfl.
package tflite

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"unsafe"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/engine"
	"github.com/adtrd/adtrd/model"
	tfl "github.com/adtrd/adtrd/tflite"
)

// Name is this engine's model.engine.
const Name = "tflite"

// Open opens c's model on this engine through engine.Load (the bundle verified, the
// tensors checked, the warm-up run): the daemon's tests use it directly.
func Open(c config.Model, log *slog.Logger) (*Engine, error) {
	o, err := engine.Load(Name, Opener, c, log)
	if err != nil {
		return nil, err
	}
	e := o.Engine.(*Engine)
	e.Meta, e.SHA256 = o.Meta, o.SHA256
	return e, nil
}

// Engine is an engine.Engine over a TFLite interpreter.
type Engine struct {
	lib             *tfl.Library
	it              *tfl.Interpreter
	in              []byte
	out             []int8
	inInfo, outInfo model.TensorInfo
	Meta            *model.Metadata // set by Open
	SHA256          string          // set by Open
}

// Opener loads the TFLite library and builds an interpreter on the bundle's graph
// bytes with the configured delegate and threads (an engine.Opener).
func Opener(b *model.Bundle, c config.Model, log *slog.Logger) (_ engine.Engine, err error) {
	lib, err := tfl.Open(c.Library)
	if err != nil {
		return nil, err
	}
	e := &Engine{lib: lib}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	opts := tfl.Options{Threads: c.Threads}
	switch c.Delegate {
	case config.DelegateCPU:
		// Not an error: it runs. But on amd64 TFLite's own int8 kernels round twice where
		// XNNPACK, the arm64 library and the toolkit round once, so scores drift from the
		// ones the threshold was chosen on.
		log.Warn("delegate cpu: int8 scores can differ from the toolkit's and arm64's by several map steps; xnnpack gives the same scores everywhere", "model", c.Path)
	case config.DelegateXNNPACK:
		opts.XNNPACK = true
	case config.DelegateGPU:
		opts.GPU = &tfl.GPUOptions{
			Library: c.GPU.Library, AllowPrecisionLoss: c.GPU.AllowPrecisionLoss, AllowQuantizedModels: c.GPU.AllowQuantized,
			PriorityMinLatency: c.GPU.MinLatency, FallbackToCPU: c.GPU.OnFailure == config.OnFailureFallback,
		}
	case config.DelegateExternal:
		opts.External = []tfl.ExternalDelegate{{Library: c.External.Library, Loader: c.External.Loader, Options: c.External.Options}}
	}
	if e.it, err = lib.NewInterpreterFromBytes(c.Path, b.Graph, opts); err != nil {
		return nil, err
	}
	for _, w := range e.it.Warnings() {
		log.Warn(string(w), "model", c.Path)
	}
	for _, line := range e.it.Printed() {
		logPrinted(log, line)
	}
	ins, outs := e.it.Inputs(), e.it.Outputs()
	if len(ins) != 1 || len(outs) != 1 {
		return nil, fmt.Errorf("%w: %s: %d inputs and %d outputs, want 1 and 1", model.ErrMetadata, c.Path, len(ins), len(outs))
	}
	info := func(t tfl.Tensor) model.TensorInfo {
		return model.TensorInfo{Type: t.Type.String(), Shape: t.Shape, Scale: float64(t.Quant.Scale), ZeroPoint: t.Quant.ZeroPoint}
	}
	e.inInfo, e.outInfo = info(ins[0]), info(outs[0])
	if e.outInfo.Type != "int8" {
		return nil, fmt.Errorf("%w: %s: output tensor is %s; the TFLite engine runs int8 graphs", model.ErrMetadata, c.Path, e.outInfo.Type)
	}
	if !b.Meta.Exact() {
		// It runs, but a threshold chosen on one architecture may not fit the other.
		// Said once the graph is known to load: a file that is no TFLite graph at all
		// (an .onnx) gets its one error, not this warning too.
		log.Warn("model exported without exact int8 rounding: its scores on arm64 can differ from amd64's by a few map steps; re-export it with this toolkit", "model", c.Path)
	}
	e.in = ins[0].Bytes()
	ob := outs[0].Bytes()
	e.out = unsafe.Slice((*int8)(unsafe.Pointer(unsafe.SliceData(ob))), len(ob))
	log.Info("model loaded", "model", c.Path, "version", b.Meta.ModelVersion, "sha256", b.SHA256[:12], "tflite", lib.Version(), "delegate", c.Delegate.String(), "threads", c.Threads)
	return e, nil
}

func (e *Engine) Input() []byte         { return e.in }
func (e *Engine) Invoke() error         { return e.it.Invoke() }
func (e *Engine) Output() engine.Output { return engine.Output{Int8: e.out} }

// Tensors are the interpreter's, as checked against the metadata at open.
func (e *Engine) Tensors() (in, out model.TensorInfo) { return e.inInfo, e.outInfo }

// Close frees the interpreter and the library; safe twice and after a failed open.
func (e *Engine) Close() error {
	if e.it != nil {
		e.it.Close()
		e.it = nil
	}
	if e.lib != nil {
		e.lib.Close()
		e.lib = nil
	}
	e.in, e.out = nil, nil
	return nil
}

// logPrinted logs a line TFLite printed itself, at the level its prefix names.
func logPrinted(log *slog.Logger, line string) {
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{"INFO: ": slog.LevelInfo, "WARNING: ": slog.LevelWarn, "ERROR: ": slog.LevelError} {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			line, level = rest, l
			break
		}
	}
	log.Log(context.Background(), level, "tflite: "+line)
}

// Factories are engine factories with this engine alone (tests, tools that run only
// TFLite); the binary lists its engines itself.
func Factories() engine.Factories { return engine.One(Name, Opener) }
