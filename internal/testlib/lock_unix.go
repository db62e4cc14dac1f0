//go:build unix

package testlib

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Exclusive holds a machine-wide lock named name until the test ends, for tests in
// different packages (which go test runs at the same time) that need one resource:
// the fake GigE Vision camera listens on 127.0.0.1's GVCP port 3956, which one
// process at a time can have.
func Exclusive(t testing.TB, name string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "adtrd-test-"+name+".lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
}
