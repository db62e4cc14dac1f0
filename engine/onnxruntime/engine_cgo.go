//go:build cgo && (linux || darwin)

package onnxruntime

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/engine"
	"github.com/adtrd/adtrd/model"
)

// ErrLibrary: the ONNX Runtime library cannot be loaded, or is not the one this
// process loaded first.
var ErrLibrary = errors.New("onnxruntime library")

// ErrProvider: an execution provider the config asks for cannot start, and
// model.onnxruntime.on_failure is refuse.
var ErrProvider = errors.New("onnxruntime execution provider")

// env is ONNX Runtime's environment: one per process, loaded from one library on
// first use and kept for the process's life (a reload that names another library is
// refused: restart to change it).
var env struct {
	mu  sync.Mutex
	lib string
}

func initEnv(lib string) error {
	env.mu.Lock()
	defer env.mu.Unlock()
	switch {
	case env.lib == lib:
		return nil
	case env.lib != "":
		return fmt.Errorf("%w: model.onnxruntime.library %s: this process loaded %s first; restart adtrd to change it", ErrLibrary, lib, env.lib)
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(ort.WithLogLevelFatal()); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrLibrary, lib, oneLine(err))
	}
	env.lib = lib
	return nil
}

// Engine is an engine.Engine over an ONNX Runtime session whose tensors live outside
// Go's heap (ONNX Runtime keeps them for the session's life).
type Engine struct {
	sess      *ort.AdvancedSession
	inT, outT *ort.Tensor[float32]
	inMem     []byte // mapped: the float32 input tensor's memory
	outMem    []byte // mapped: the float32 output tensor's memory
	in        []float32
	out       []float32
	px        []byte // Input(): the frame's RGB bytes, converted in Invoke
	inInfo    model.TensorInfo
	outInfo   model.TensorInfo
	Providers []config.Provider // the providers the session was given, in order
}

// Opener builds an ONNX Runtime session on the bundle's graph with the configured
// providers (an engine.Opener).
func Opener(b *model.Bundle, c config.Model, log *slog.Logger) (_ engine.Engine, err error) {
	o := c.ONNXRuntime
	if err := initEnv(library(o.Library)); err != nil {
		return nil, err
	}
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(b.Graph)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: not an ONNX graph ONNX Runtime reads: %v", model.ErrModel, c.Path, oneLine(err))
	}
	if len(ins) != 1 || len(outs) != 1 {
		return nil, fmt.Errorf("%w: %s: %d inputs and %d outputs, want 1 and 1", model.ErrMetadata, c.Path, len(ins), len(outs))
	}
	e := &Engine{inInfo: info(ins[0]), outInfo: info(outs[0])}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.inInfo.Type != "float32" || e.outInfo.Type != "float32" || len(e.inInfo.Shape) != 4 || e.inInfo.Shape[3] != 3 {
		return nil, fmt.Errorf("%w: %s: input %s%v, output %s%v: this engine runs a float32 NHWC RGB input and a float32 map", model.ErrMetadata, c.Path, e.inInfo.Type, e.inInfo.Shape, e.outInfo.Type, e.outInfo.Shape)
	}
	nIn, nOut := elements(e.inInfo.Shape), elements(e.outInfo.Shape)
	if e.inMem, e.in, err = mapFloats(nIn); err != nil {
		return nil, err
	}
	if e.outMem, e.out, err = mapFloats(nOut); err != nil {
		return nil, err
	}
	e.px = make([]byte, nIn)
	if e.inT, err = ort.NewTensor(shape(e.inInfo.Shape), e.in); err != nil {
		return nil, fmt.Errorf("onnxruntime: input tensor: %v", oneLine(err))
	}
	if e.outT, err = ort.NewTensor(shape(e.outInfo.Shape), e.out); err != nil {
		return nil, fmt.Errorf("onnxruntime: output tensor: %v", oneLine(err))
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("onnxruntime: session options: %v", oneLine(err))
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(c.Threads); err != nil {
		return nil, fmt.Errorf("onnxruntime: threads %d: %v", c.Threads, oneLine(err))
	}
	if e.Providers, err = appendProviders(opts, o, log); err != nil {
		return nil, err
	}
	e.sess, err = ort.NewAdvancedSessionWithONNXData(b.Graph, []string{ins[0].Name}, []string{outs[0].Name},
		[]ort.Value{e.inT}, []ort.Value{e.outT}, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: ONNX Runtime cannot build a session on it: %v", model.ErrModel, c.Path, oneLine(err))
	}
	log.Info("model loaded", "model", c.Path, "version", b.Meta.ModelVersion, "sha256", b.SHA256[:12], "onnxruntime", ort.GetVersion(), "providers", fmt.Sprint(e.Providers), "threads", c.Threads)
	return e, nil
}

// appendProviders gives the session the configured providers in order; one that
// cannot start is skipped with a warning (fallback) or refuses the model (refuse).
// The CPU is always there last: ONNX Runtime runs on it what no other provider takes.
func appendProviders(opts *ort.SessionOptions, o config.ONNXRuntime, log *slog.Logger) ([]config.Provider, error) {
	var used []config.Provider
	for _, p := range o.Providers {
		var err error
		switch p {
		case config.ProviderTensorRT:
			err = appendTensorRT(opts, o.TensorRT)
		case config.ProviderCUDA:
			err = appendCUDA(opts)
		case config.ProviderCPU:
		}
		switch {
		case err == nil:
			used = append(used, p)
		case o.OnFailure == config.OnFailureRefuse:
			return nil, fmt.Errorf("%w: model.onnxruntime.providers: %s cannot start (%v), and model.onnxruntime.on_failure is refuse", ErrProvider, p, oneLine(err))
		default:
			log.Warn(fmt.Sprintf("onnxruntime: the %s provider cannot start (%v): the graph runs on the next provider listed, and on the CPU", p, oneLine(err)))
		}
	}
	if len(used) == 0 || used[len(used)-1] != config.ProviderCPU {
		used = append(used, config.ProviderCPU)
	}
	return used, nil
}

func appendTensorRT(opts *ort.SessionOptions, t config.TensorRT) error {
	trt, err := ort.NewTensorRTProviderOptions()
	if err != nil {
		return err
	}
	defer trt.Destroy()
	set := map[string]string{"trt_fp16_enable": flag(t.FP16), "trt_int8_enable": flag(t.INT8)}
	if t.Cache != "" {
		set["trt_engine_cache_enable"], set["trt_engine_cache_path"] = "1", t.Cache
	}
	if err := trt.Update(set); err != nil {
		return err
	}
	return opts.AppendExecutionProviderTensorRT(trt)
}

func appendCUDA(opts *ort.SessionOptions) error {
	cuda, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return err
	}
	defer cuda.Destroy()
	return opts.AppendExecutionProviderCUDA(cuda)
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Input is the frame's packed RGB bytes; Invoke converts them to the float32 input.
func (e *Engine) Input() []byte { return e.px }

// Invoke converts the frame to float32 (0..255, the graph normalises) and runs the
// session: no allocation.
func (e *Engine) Invoke() error {
	for i, v := range e.px {
		e.in[i] = float32(v)
	}
	if err := e.sess.Run(); err != nil {
		return fmt.Errorf("onnxruntime: %v", oneLine(err))
	}
	return nil
}

// Output is the float32 map of the last Invoke.
func (e *Engine) Output() engine.Output { return engine.Output{Float32: e.out} }

func (e *Engine) Tensors() (in, out model.TensorInfo) { return e.inInfo, e.outInfo }

// Close destroys the session and its tensors and unmaps their memory; safe twice and
// after a half-done Opener. The process's ONNX Runtime environment stays.
func (e *Engine) Close() error {
	var errs []error
	if e.sess != nil {
		errs = append(errs, e.sess.Destroy())
		e.sess = nil
	}
	for _, t := range []**ort.Tensor[float32]{&e.inT, &e.outT} {
		if *t != nil {
			errs = append(errs, (*t).Destroy())
			*t = nil
		}
	}
	for _, m := range []*[]byte{&e.inMem, &e.outMem} {
		if *m != nil {
			errs = append(errs, unmap(*m))
			*m = nil
		}
	}
	return errors.Join(errs...)
}

func info(i ort.InputOutputInfo) model.TensorInfo {
	t := "unsupported"
	switch i.DataType {
	case ort.TensorElementDataTypeFloat:
		t = "float32"
	case ort.TensorElementDataTypeUint8:
		t = "uint8"
	case ort.TensorElementDataTypeInt8:
		t = "int8"
	}
	s := make([]int, len(i.Dimensions))
	for k, d := range i.Dimensions {
		s[k] = int(d)
		if d < 0 && k == 0 { // a dynamic batch: this engine runs one frame
			s[k] = 1
		}
	}
	return model.TensorInfo{Type: t, Shape: s}
}

func elements(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

func shape(s []int) ort.Shape {
	out := make(ort.Shape, len(s))
	for i, d := range s {
		out[i] = int64(d)
	}
	return out
}

// oneLine keeps an ONNX Runtime error to one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
