package safefile_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adtrd/adtrd/internal/safefile"
	"github.com/adtrd/adtrd/internal/testlib"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	os.WriteFile(file, []byte("threshold: 1\n"), 0o644)
	big := filepath.Join(dir, "big")
	os.WriteFile(big, make([]byte, 100), 0o644)
	fifo := filepath.Join(dir, "fifo.yaml")
	haveFIFO := testlib.Mkfifo(fifo) == nil
	type row struct {
		name string
		path string
		max  int64
		want error  // nil: read
		msg  string // in the error
	}
	tests := []row{
		{"a regular file", file, 1 << 20, nil, ""},                            // read whole
		{"a directory", dir, 1 << 20, safefile.ErrNotRegular, "a directory"},  // not opened
		{"too large", big, 99, safefile.ErrTooLarge, "100 bytes, at most 99"}, // refused before reading
		{"exactly the bound", big, 100, nil, ""},                              // allowed
		{"/dev/zero, which never ends", "/dev/zero", 1 << 20, safefile.ErrNotRegular, "character device"},
		{"missing", filepath.Join(dir, "nope"), 1 << 20, os.ErrNotExist, "nope"},
	}
	if haveFIFO {
		tests = append(tests, row{"a FIFO with no writer", fifo, 1 << 20, safefile.ErrNotRegular, "a FIFO"}) // would block forever
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(tc.path); tc.path == "/dev/zero" && err != nil {
				t.Skip("no /dev/zero here")
			}
			done := make(chan error, 1)
			go func() { _, err := safefile.Read(tc.path, tc.max); done <- err }()
			select {
			case err := <-done:
				if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
					t.Fatalf("err %v, want %v", err, tc.want)
				}
				if err != nil && (!strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), filepath.Base(tc.path))) {
					t.Fatalf("err %q: want the path and %q", err, tc.msg)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Read blocked")
			}
		})
	}
}
