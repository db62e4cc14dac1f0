//go:build !linux || race

package vet

// limitMemory: no address-space limit elsewhere, nor under the race detector, whose
// shadow memory reserves terabytes of address space.
func limitMemory(uint64) error { return nil }
