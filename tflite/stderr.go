package tflite

import (
	"os"

	"github.com/adtrd/adtrd/internal/cstderr"
)

// Stderr is the process's standard error as it was before any capture
// (cstderr.Stderr): loggers should write here, not to fd 2.
func Stderr() *os.File { return cstderr.Stderr() }
