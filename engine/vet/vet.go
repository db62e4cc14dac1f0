// Package vet loads a model that comes from outside (a reload, a new file) in a child
// process first, the same binary, so that a graph that crashes or hangs the runtime
// kills the child and not the line.
package vet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/engine"
	"github.com/adtrd/adtrd/internal/child"
	"github.com/adtrd/adtrd/model"
)

// Command is the hidden subcommand the child runs: `adtrd vet-model --memory N`, the
// model section as JSON on its standard input.
const Command = "vet-model"

// Limits bound one vetting child.
type Limits struct {
	// Time for the child to start, load the model and run the warm-up inference.
	Time time.Duration
	// Memory is the child's address-space limit (RLIMIT_AS), bytes; 0: none.
	Memory uint64
}

// DefaultLimits: a minute (the demo loads in well under a second; a big graph on a
// slow board, or a GPU delegate compiling its kernels, takes tens of seconds) and
// 8 GiB of address space (the child loads the demo with XNNPACK in 2 GiB and not in
// 1 GiB: Go's heap reserves address space ahead; a runaway allocation dies at 8).
var DefaultLimits = Limits{Time: time.Minute, Memory: 8 << 30}

// ErrRefused: the model failed in the vetting child (an error, a crash, a hang or the
// memory limit); the running generation is kept.
var ErrRefused = errors.New("refused in a vetting child")

// ErrStopped: the vetting was stopped from outside (its context ended: the daemon
// stopping, the command interrupted) before the child said anything; the model was
// neither vetted nor refused.
var ErrStopped = errors.New("not vetted: stopped")

// Vetter runs vetting children of one executable.
type Vetter struct {
	Exe    string   // the binary (os.Executable)
	Env    []string // nil: the daemon's environment
	Limits Limits
	Log    *slog.Logger // the child's own lines, at debug
}

// resultPrefix starts the child's one result line on its stdout.
const resultPrefix = "adtrd-vet-result: "

// Vet loads m in a child and runs one warm-up inference there. nil: the child did
// it; else an ErrRefused error that says how the child ended, in one line.
func (v *Vetter) Vet(ctx context.Context, m config.Model) error {
	// The files first, here: a graph its metadata does not describe, a pin it does not
	// match, a file that is no file, are said as they are, with no child started. The
	// child is for what only the runtime can do to the daemon.
	if _, err := model.OpenBundle(m.Path, m.MetadataPath(), m.SHA256); err != nil {
		return err
	}
	in, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("vet %s: %w", m.Path, err)
	}
	log := v.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	var crash crashLines
	p, err := child.Start(child.Options{
		Path: v.Exe, Args: []string{Command, "--memory", fmt.Sprint(v.Limits.Memory)}, Env: v.Env,
		Stdin: strings.NewReader(string(in)), Tail: 8,
		Line: func(s string) {
			if !strings.HasPrefix(s, resultPrefix) {
				crash.add(s)
				log.Debug("vetting child: "+s, "model", m.Path)
			}
		},
	})
	if err != nil {
		// The binary cannot be run again (replaced by an upgrade under the running
		// daemon, or run by an emulator that cannot start another of its kind): that
		// is no fault of the model, and the line must not stop over its safety net.
		log.Warn("model loaded without vetting: the vetting child cannot start", "model", m.Path, "err", err)
		return nil
	}
	limit := cmpTime(v.Limits.Time)
	ctx, cancel := context.WithTimeoutCause(ctx, limit, errTimeLimit)
	defer cancel()
	err = p.Wait(ctx)
	result, said := lastResult(p.Tail())
	took := time.Since(start).Round(time.Millisecond)
	switch {
	case err == nil && said && result == "ok":
		log.Debug("model vetted in a child", "model", m.Path, "took", took)
		return nil
	case errors.Is(err, child.ErrKilled) && errors.Is(err, errTimeLimit):
		return fmt.Errorf("model %s: not loaded and warmed up within %v, the runtime hangs on it: %w, killed", m.Path, limit, ErrRefused)
	case errors.Is(err, child.ErrKilled):
		return fmt.Errorf("model %s: vetting stopped (%v): %w", m.Path, context.Cause(ctx), ErrStopped)
	case said:
		return fmt.Errorf("%s: %w", result, ErrRefused)
	}
	return fmt.Errorf("model %s: the %s engine crashed loading it or in its warm-up inference, after %v (%s): %w", m.Path, engineName(m), took, crash.how(err, p.Tail()), ErrRefused)
}

// crashLines keeps what a dying child said first: Go's "fatal error:" or "panic:"
// line and the signal line under it. A signal is Go's crash report with exit status 2,
// not a death by signal: "fatal error: unexpected signal" and "[signal SIGSEGV ...]"
// from Go code, or "SIGSEGV: segmentation violation" and "signal arrived during cgo
// execution" from C code (the TFLite library), above the registers.
type crashLines struct {
	mu           sync.Mutex
	fatal, signl string
}

func (c *crashLines) add(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.fatal == "" && (strings.HasPrefix(s, "fatal error: ") || strings.HasPrefix(s, "panic: ") || goSignal(s)):
		c.fatal = s
	case c.signl == "" && (strings.HasPrefix(s, "[signal ") || s == "signal arrived during cgo execution"):
		c.signl = s
	}
}

// goSignal: the first line of Go's report of a signal it could not handle, such as
// "SIGSEGV: segmentation violation" or "SIGABRT: abort".
func goSignal(s string) bool {
	name, _, ok := strings.Cut(s, ": ")
	return ok && len(name) > 3 && strings.HasPrefix(name, "SIG") && strings.ToUpper(name) == name && !strings.Contains(name, " ")
}

func (c *crashLines) how(err error, tail []string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Sprintf("killed by %v", ws.Signal())
		}
	}
	if c.fatal != "" {
		return strings.TrimSpace(fmt.Sprintf("%.200s %.120s", c.fatal, c.signl))
	}
	if len(tail) > 0 {
		return fmt.Sprintf("%v; its last line: %.200q", err, tail[len(tail)-1])
	}
	return fmt.Sprint(err)
}

var errTimeLimit = errors.New("time limit")

func cmpTime(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultLimits.Time
	}
	return d
}

func engineName(m config.Model) string {
	if m.Engine == "" {
		return "model"
	}
	return m.Engine
}

// lastResult is the child's result line: "ok" or the error it said.
func lastResult(tail []string) (string, bool) {
	for i := len(tail) - 1; i >= 0; i-- {
		if r, ok := strings.CutPrefix(tail[i], resultPrefix); ok {
			return r, true
		}
	}
	return "", false
}

// Serve is the child's side (`adtrd vet-model`): it sets its memory limit, reads
// the model section from r, opens it through open (which loads it and runs the
// warm-up inference) and writes the result line to w. It returns the exit status:
// 0 opened, 1 refused, 2 bad use.
func Serve(args []string, r io.Reader, w io.Writer, open func(config.Model, *slog.Logger) (engine.Opened, error), log *slog.Logger) int {
	var memory uint64
	if len(args) != 2 || args[0] != "--memory" {
		fmt.Fprintf(w, "%susage: %s --memory BYTES, the model section as JSON on stdin\n", resultPrefix, Command)
		return 2
	}
	if _, err := fmt.Sscan(args[1], &memory); err != nil {
		fmt.Fprintf(w, "%s--memory %q: %v\n", resultPrefix, args[1], err)
		return 2
	}
	if err := limitMemory(memory); err != nil {
		fmt.Fprintf(w, "%smemory limit: %v\n", resultPrefix, err)
		return 1
	}
	var m config.Model
	dec := json.NewDecoder(bufio.NewReader(io.LimitReader(r, 1<<20)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		fmt.Fprintf(w, "%smodel section on stdin: %v\n", resultPrefix, err)
		return 2
	}
	o, err := open(m, log)
	if err != nil {
		fmt.Fprintf(w, "%s%s\n", resultPrefix, strings.ReplaceAll(err.Error(), "\n", "; "))
		return 1
	}
	o.Close()
	fmt.Fprintf(w, "%sok\n", resultPrefix)
	return 0
}
