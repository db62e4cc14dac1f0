//go:build !linux

package tflite

import "os"

// Stderr is the process's standard error (Linux redirects it around TFLite calls).
func Stderr() *os.File { return os.Stderr }
