//go:build !unix

package testlib

import "testing"

// Exclusive: no machine-wide lock here; the tests that need one run on Linux.
func Exclusive(t testing.TB, name string) {}
