// Package onnxruntime is the engine over ONNX Runtime's C library (model.engine
// onnxruntime): an ONNX graph on the execution providers the config lists in order
// (TensorRT, CUDA, the CPU), through github.com/yalue/onnxruntime_go.
package onnxruntime

import (
	"github.com/adtrd/adtrd/internal/libpath"
)

// Name is this engine's model.engine.
const Name = "onnxruntime"

// LibraryName is the library's file name, as ONNX Runtime's own builds name it.
const LibraryName = "libonnxruntime.so.1"

// LibrarySearch lists where the engine looks when model.onnxruntime.library is empty:
// beside the binary, ../lib/adtrd from it (the .deb's layout), /usr/lib/adtrd, then
// the dynamic loader's own search (the bare name).
func LibrarySearch() []string { return libpath.Search(LibraryName) }

// library is the configured path, or the first of LibrarySearch that exists.
func library(configured string) string { return libpath.Find(configured, LibraryName) }
