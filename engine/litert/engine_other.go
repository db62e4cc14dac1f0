//go:build !linux || !cgo

package litert

import (
	"errors"
	"log/slog"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/engine"
	"github.com/adtrd/adtrd/model"
)

// ErrLibrary: the LiteRT library cannot be loaded.
var ErrLibrary = errors.New("litert library")

// ErrAccelerator: the GPU accelerator cannot compile the graph and
// model.litert.on_failure is refuse.
var ErrAccelerator = errors.New("litert gpu accelerator")

// Opener refuses: LiteRT's C API is reached through cgo and dlopen on Linux.
func Opener(*model.Bundle, config.Model, *slog.Logger) (engine.Engine, error) {
	return nil, errors.New("litert: not supported in this build (it needs cgo on linux)")
}
