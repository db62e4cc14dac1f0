//go:build !linux

package cstderr

import "os"

// Stderr is the process's standard error (Linux redirects it around C calls).
func Stderr() *os.File { return os.Stderr }

// Capture runs fn; its output goes where fd 2 goes (no capture off Linux).
func Capture(fn func()) []string {
	fn()
	return nil
}
