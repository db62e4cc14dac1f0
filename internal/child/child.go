// Package child runs a helper process the daemon must outlive: a camera pipeline, a
// model being vetted. Its own process group, killed with the daemon, output drained
// line by line (bounded), and the whole group killed when it hangs or is stopped.
package child

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// MaxLine is the longest output line passed on (bytes); the rest of a longer line is
// read and dropped, so a child never blocks on a full pipe.
const MaxLine = 4096

// Options say what to run and where its output goes.
type Options struct {
	Path string
	Args []string
	Env  []string // nil: the daemon's environment
	// Stdin is copied to the child's standard input (nil: none).
	Stdin io.Reader
	// ExtraFiles are the child's descriptors 3, 4...; Start closes its copies.
	ExtraFiles []*os.File
	// Line gets each line the child writes to stdout or stderr (one pipe, so in the
	// order written), trimmed, cut at MaxLine; it runs on the reading goroutine.
	Line func(string)
	// Tail is how many of the last lines Tail keeps (0: none).
	Tail int
}

// Process is one started child.
type Process struct {
	cmd     *exec.Cmd
	out     *os.File
	outDone chan struct{}
	exited  chan struct{}
	waitErr error
	mu      sync.Mutex
	killed  error // set by a Stop whose grace ran out
	tail    []string
	tailN   int
	once    sync.Once
}

// Start starts the child in its own process group; the kernel kills it if the daemon
// dies (Linux). The caller must Stop or Wait it.
func Start(opt Options) (*Process, error) {
	r, w, err := os.Pipe()
	if err != nil {
		closeAll(opt.ExtraFiles)
		return nil, fmt.Errorf("output pipe: %w", err)
	}
	cmd := exec.Command(opt.Path, opt.Args...)
	cmd.Stdout, cmd.Stderr, cmd.Stdin = w, w, opt.Stdin
	cmd.ExtraFiles = opt.ExtraFiles
	cmd.Env = opt.Env
	setProcAttr(cmd)
	err = cmd.Start()
	w.Close()
	closeAll(opt.ExtraFiles)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("start %s: %w", opt.Path, err)
	}
	p := &Process{cmd: cmd, out: r, outDone: make(chan struct{}), exited: make(chan struct{}), tailN: opt.Tail}
	go func() {
		defer close(p.outDone)
		p.read(r, opt.Line)
	}()
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

// Process is the child's process (tests signal it).
func (p *Process) Process() *os.Process { return p.cmd.Process }

// Exited is closed when the child has exited and been reaped.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// read passes r's lines on until it ends. A line longer than MaxLine is cut and the
// rest of it skipped: the output is always drained.
func (p *Process) read(r io.Reader, line func(string)) {
	br := bufio.NewReaderSize(r, MaxLine)
	for {
		b, err := br.ReadSlice('\n')
		s := strings.TrimSpace(string(b))
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = br.ReadSlice('\n')
		}
		if s != "" {
			if p.tailN > 0 {
				p.mu.Lock()
				if len(p.tail) == p.tailN {
					p.tail = append(p.tail[:0], p.tail[1:]...)
				}
				p.tail = append(p.tail, s)
				p.mu.Unlock()
			}
			if line != nil {
				line(s)
			}
		}
		if err != nil {
			return
		}
	}
}

// Tail is the last Options.Tail lines the child wrote, oldest first.
func (p *Process) Tail() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.tail...)
}

// Wait waits for the child to exit, or kills its group when ctx ends first (then
// ErrKilled, wrapping ctx's error). The error otherwise is how it exited
// (*exec.ExitError: a status or a signal). Its output is read to the end first.
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.exited:
		p.finish()
		return p.waitErr
	case <-ctx.Done():
		killGroup(p.cmd.Process)
		<-p.exited
		p.finish()
		return fmt.Errorf("%w: %w", ErrKilled, context.Cause(ctx))
	}
}

// ErrKilled: the child was killed because it ran past its time.
var ErrKilled = errors.New("killed")

// Stop interrupts the child (SIGINT: a gst-launch-1.0 sets its pipeline to NULL and
// hands its camera back), kills its process group after grace or once it exited
// (whatever it forked), reaps it and closes its output once read. The error is how
// the child exited, or ErrKilled when it was still running after grace (a camera it
// held may stay held until the camera's own timeout). Safe after Wait.
func (p *Process) Stop(grace time.Duration) error {
	select {
	case <-p.exited: // it ended on its own, or was stopped before: the same answer
		killGroup(p.cmd.Process) // what it forked
		p.finish()
		p.mu.Lock()
		defer p.mu.Unlock()
		return cmp.Or(p.killed, p.waitErr)
	default:
	}
	interrupt(p.cmd.Process)
	t := time.NewTimer(grace)
	select {
	case <-p.exited:
		t.Stop()
		killGroup(p.cmd.Process) // what it forked; the leader is reaped
	case <-t.C:
		killGroup(p.cmd.Process)
		<-p.exited
		p.mu.Lock()
		p.killed = fmt.Errorf("%w: still running %v after its interrupt", ErrKilled, grace)
		if p.waitErr != nil {
			p.killed = fmt.Errorf("%w: %w", p.killed, p.waitErr)
		}
		p.mu.Unlock()
	}
	p.finish()
	p.mu.Lock()
	defer p.mu.Unlock()
	return cmp.Or(p.killed, p.waitErr)
}

// outGrace is how long the output gets after the child exited: something it started
// may still hold the pipe (GStreamer's plugin scanner), and then the pipe is closed
// under it.
const outGrace = time.Second

func (p *Process) finish() {
	p.once.Do(func() {
		select {
		case <-p.outDone:
		case <-time.After(outGrace):
			p.out.Close()
			<-p.outDone
		}
		p.out.Close()
	})
}
