//go:build !unix

package testlib

import "errors"

// Mkfifo: no FIFOs on this system.
func Mkfifo(string) error { return errors.ErrUnsupported }
