//go:build linux && !race

package vet

import "syscall"

// limitMemory caps the process's address space: an allocation past it fails, and
// the runtime that cannot cope dies, in the child.
func limitMemory(bytes uint64) error {
	if bytes == 0 {
		return nil
	}
	return syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: bytes, Max: bytes})
}
