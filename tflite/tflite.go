// Package tflite binds the TensorFlow Lite C API, opened at run time with dlopen.
// It is the daemon's inference engine: models, interpreters, tensors and delegates.
package tflite

import (
	"errors"
	"fmt"

	"github.com/adtrd/adtrd/internal/libpath"
)

// Sentinel errors, checked with errors.Is.
var (
	ErrLibrary     = errors.New("tflite: library")
	ErrModel       = errors.New("tflite: model")
	ErrDelegate    = errors.New("tflite: delegate")
	ErrInvoke      = errors.New("tflite: invoke")
	ErrClosed      = errors.New("tflite: closed")
	ErrUnsupported = errors.New("tflite: not supported on this platform or build")
)

// LibraryName is the file the default search looks for.
const LibraryName = "libtensorflowlite_c.so"

// TensorType mirrors TfLiteType for the types the daemon uses.
type TensorType int

// Values are TfLiteType's numbering, so they convert directly.
const (
	NoType  TensorType = 0
	Float32 TensorType = 1
	Int32   TensorType = 2
	UInt8   TensorType = 3
	Int64   TensorType = 4
	Int8    TensorType = 9
)

func (t TensorType) String() string {
	switch t {
	case NoType:
		return "none"
	case Float32:
		return "float32"
	case Int32:
		return "int32"
	case UInt8:
		return "uint8"
	case Int64:
		return "int64"
	case Int8:
		return "int8"
	}
	return fmt.Sprintf("type(%d)", int(t))
}

// Quant is a tensor's affine quantisation: real = Scale * (q - ZeroPoint).
type Quant struct {
	Scale     float32
	ZeroPoint int32
}

// GPUOptions configure TfLiteGpuDelegateV2Create from a separately built library.
type GPUOptions struct {
	Library               string // path to libtensorflowlite_gpu_delegate.so
	AllowPrecisionLoss    bool
	AllowQuantizedModels  bool
	SustainedSpeed        bool // inference preference: sustained speed instead of fast single answer
	PriorityMinLatency    bool // priority 1: min latency instead of max precision
	FallbackToCPU         bool // on failure: warn and run on the CPU instead of refusing
	MaxDelegatePartitions int
}

// ExternalDelegate is a TFLite external delegate: a plugin library plus options.
type ExternalDelegate struct {
	Library string
	Options map[string]string
	// Loader is libexternal_delegate_obj.so; empty means beside the TFLite library.
	Loader string
}

// Options configure an interpreter.
type Options struct {
	Threads  int
	XNNPACK  bool
	GPU      *GPUOptions
	External []ExternalDelegate
}

// Warning is something that did not stop the interpreter from starting but that an
// operator must hear about (a delegate that fell back to the CPU).
type Warning string

// LibrarySearch lists where Open looks when no path is given: beside the binary, in
// ../lib/adtrd from it (the .deb's layout wherever its tree is unpacked), /usr/lib/adtrd,
// then the dynamic loader's own search (the bare name).
func LibrarySearch() []string { return libpath.Search(LibraryName) }
