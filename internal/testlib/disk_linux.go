//go:build linux

package testlib

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// SmallDisk mounts a tmpfs of size bytes (a whole number of 4 KiB pages) and at most
// inodes files and folders (0: the kernel's default) under a fresh temporary folder,
// and unmounts it when the test ends: a real disk that fills, as a line PC's does.
// It skips the test where mounting is refused (not root, or no CAP_SYS_ADMIN in a
// container).
func SmallDisk(t testing.TB, size int64, inodes int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	opts := fmt.Sprintf("size=%d,mode=0750", size)
	if inodes > 0 {
		opts += fmt.Sprintf(",nr_inodes=%d", inodes)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		t.Skipf("cannot mount a %d-byte tmpfs to fill (%v): the full-disk tests need root with CAP_SYS_ADMIN", size, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// Fill writes a file into dir's filesystem so that leave bytes of it stay free
// (rounded down to whole blocks), and returns the file, to remove to free the space.
func Fill(t testing.TB, dir string, leave int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n := free - leave; n > 0 {
		if _, err := f.Write(make([]byte, n)); err != nil {
			t.Fatalf("filling %s to leave %d bytes: %v", dir, leave, err)
		}
	}
	return p
}
