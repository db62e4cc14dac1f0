//go:build !cgo || !(linux || darwin)

package onnxruntime

import (
	"errors"
	"log/slog"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/engine"
	"github.com/adtrd/adtrd/model"
)

// ErrLibrary: the ONNX Runtime library cannot be loaded.
var ErrLibrary = errors.New("onnxruntime library")

// ErrProvider: an execution provider the config asks for cannot start.
var ErrProvider = errors.New("onnxruntime execution provider")

// Opener refuses: this build has no cgo, which ONNX Runtime's binding needs.
func Opener(*model.Bundle, config.Model, *slog.Logger) (engine.Engine, error) {
	return nil, errors.New("onnxruntime: not supported in this build (it needs cgo on linux or darwin)")
}
