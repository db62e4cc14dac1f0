//go:build linux

// Package cstderr catches what C libraries print on the process's standard error
// (fd 2) around a call, so their words reach the caller's errors and logger.
package cstderr

import (
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
)

// C runtimes print some of what they have to say on fd 2 themselves: TFLite 2.9's
// TfLiteModelCreate says "The model is not a valid Flatbuffer buffer" before it has an
// error reporter, XNNPACK logs "Created TensorFlow Lite XNNPACK delegate", and LiteRT
// says how many ops its GPU accelerator took only there. So the calls that may print
// run with fd 2 pointed into a pipe, and what they wrote comes back to the caller as
// lines, into its errors or its logger: nothing bypasses a JSON log.

var (
	stderrOnce sync.Once
	stderrFile *os.File
	captureMu  sync.Mutex // one capture at a time: fd 2 is the process's
)

// Stderr is the process's standard error as it was before any capture. Loggers and
// error messages should write here: while a captured call runs, fd 2 is the capture's
// pipe, and a record written to it then would be taken for the library's.
func Stderr() *os.File {
	stderrOnce.Do(func() {
		stderrFile = os.Stderr
		if fd, err := syscall.Dup(2); err == nil {
			syscall.CloseOnExec(fd)
			stderrFile = os.NewFile(uintptr(fd), "/dev/stderr")
		}
	})
	return stderrFile
}

// maxCaptured bounds what one call's output may hold in memory; the rest is read and
// dropped so the C side never blocks on a full pipe.
const maxCaptured = 64 << 10

// Capture runs fn with fds 1 and 2 redirected and returns the non-empty lines
// written to them. If the redirection cannot be set up, fn runs anyway and its
// output goes where it went.
func Capture(fn func()) []string {
	captureMu.Lock()
	defer captureMu.Unlock()
	Stderr()
	r, w, err := os.Pipe()
	if err != nil {
		fn()
		return nil
	}
	defer r.Close()
	// fds 1 and 2 both: LiteRT prints some of its INFO lines on stdout, which would
	// land in a report (`adtrd bench --json`). The caller flushes C's stdio buffers
	// inside fn, so nothing printed during the call comes out after it.
	var saved []int
	for _, fd := range []int{2, 1} {
		old, err := syscall.Dup(fd)
		if err == nil {
			if err = syscall.Dup3(int(w.Fd()), fd, 0); err != nil {
				syscall.Close(old)
			}
		}
		if err != nil {
			break
		}
		saved = append(saved, old)
	}
	read := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(r, maxCaptured))
		io.Copy(io.Discard, r)
		read <- b
	}()
	fn()
	for i, old := range saved {
		syscall.Dup3(old, []int{2, 1}[i], 0)
		syscall.Close(old)
	}
	w.Close() // the pipe's last writer: the reader sees EOF
	return splitLines(<-read)
}

func splitLines(b []byte) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
