//go:build !linux

package testlib

import "testing"

// SmallDisk: tmpfs is Linux's; the full-disk tests skip elsewhere.
func SmallDisk(t testing.TB, size int64, inodes int) string {
	t.Skip("no tmpfs to fill here: the full-disk tests run on Linux")
	return ""
}

// Fill: see SmallDisk.
func Fill(t testing.TB, dir string, leave int64) string {
	t.Skip("no tmpfs to fill here")
	return ""
}
