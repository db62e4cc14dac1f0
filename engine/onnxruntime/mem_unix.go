//go:build cgo && (linux || darwin)

package onnxruntime

import (
	"fmt"
	"syscall"
	"unsafe"
)

// mapFloats maps n float32s outside Go's heap: ONNX Runtime keeps a tensor's memory
// for the session's life, and C must never keep Go memory.
func mapFloats(n int) ([]byte, []float32, error) {
	b, err := syscall.Mmap(-1, 0, n*4, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, nil, fmt.Errorf("onnxruntime: map %d floats: %w", n, err)
	}
	return b, unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), n), nil
}

func unmap(b []byte) error { return syscall.Munmap(b) }
