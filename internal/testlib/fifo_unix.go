//go:build unix

package testlib

import "syscall"

// Mkfifo makes a FIFO at path: a file whose read blocks until a writer comes, the way
// tests stand in for a hung mount or a device; errors.ErrUnsupported where there are none.
func Mkfifo(path string) error { return syscall.Mkfifo(path, 0o644) }
