package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watcher says when the config file or a file it names may have changed. It watches
// their directories, not the files: an editor's atomic-rename save or a ConfigMap's
// symlink swap replaces the file, and a watch on the file itself would be lost.
// Symlinks are re-resolved on every event, so a swapped link is seen; chmod-only
// events are ignored; bursts are debounced into one request; an event overflow asks
// for a full reload.
type Watcher struct {
	w        *fsnotify.Watcher
	log      *slog.Logger
	debounce time.Duration
	out      chan string

	mu    sync.Mutex
	files []string
	names map[string]bool // base names that matter in the watched dirs
	dirs  map[string]bool
	once  sync.Once
}

// NewWatcher starts watching nothing; Watch sets the files.
func NewWatcher(debounce time.Duration, log *slog.Logger) (*Watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("config: watch: %w", err)
	}
	return &Watcher{w: fw, log: log, debounce: debounce, out: make(chan string, 1), names: map[string]bool{}, dirs: map[string]bool{}}, nil
}

// C delivers reload requests (a reason); requests made while one waits are merged.
func (w *Watcher) C() <-chan string { return w.out }

// Watch makes files (and, for symlinks, their targets) the ones that matter, and
// watches their directories. Call it again after each reload: the config may now
// name other models, and links may point elsewhere.
func (w *Watcher) Watch(files ...string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.files = append(w.files[:0], files...)
	names, dirs := map[string]bool{}, map[string]bool{}
	for _, f := range files {
		if f == "" {
			continue
		}
		for _, p := range chain(f) {
			names[filepath.Base(p)] = true
			dirs[filepath.Dir(p)] = true
		}
	}
	var errs []error
	for d := range dirs {
		if !w.dirs[d] {
			if err := w.w.Add(d); err != nil {
				errs = append(errs, fmt.Errorf("config: watch %s: %w", d, err))
				delete(dirs, d)
			}
		}
	}
	for d := range w.dirs {
		if !dirs[d] {
			w.w.Remove(d)
		}
	}
	w.names, w.dirs = names, dirs
	return errors.Join(errs...)
}

// chain is p, then each link on the way to its final target.
func chain(p string) []string {
	out := []string{filepath.Clean(p)}
	cur := p
	for range 16 {
		target, err := os.Readlink(cur)
		if err != nil {
			break
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(cur), target)
		}
		cur = filepath.Clean(target)
		out = append(out, cur)
	}
	if real, err := filepath.EvalSymlinks(p); err == nil {
		out = append(out, real)
	}
	return out
}

func (w *Watcher) relevant(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	base := filepath.Base(ev.Name)
	w.mu.Lock()
	defer w.mu.Unlock()
	// "..data" and "..2026_..." are a Kubernetes ConfigMap's links and directories.
	return w.names[base] || strings.HasPrefix(base, "..")
}

// Run forwards changes until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var first time.Time
	reason := ""
	request := func(r string) {
		select {
		case w.out <- r:
		default: // one is already waiting; the reload will read the latest files
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.w.Events:
			if !ok {
				return
			}
			if !w.relevant(ev) {
				continue
			}
			now := time.Now()
			if reason == "" {
				first, reason = now, fmt.Sprintf("%s %s", strings.ToLower(ev.Op.String()), ev.Name)
			}
			// Trailing debounce, but never more than 5 debounce periods after the first event.
			wait := w.debounce
			if left := first.Add(5 * w.debounce).Sub(now); left < wait {
				wait = max(left, 0)
			}
			timer.Reset(wait)
		case err, ok := <-w.w.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.log.Warn("file events overflowed: reloading fully")
				request("event overflow")
				continue
			}
			w.log.Error("config watch", "err", err)
		case <-timer.C:
			request(reason)
			reason = ""
		}
	}
}

// Close stops watching; safe twice.
func (w *Watcher) Close() error {
	var err error
	w.once.Do(func() { err = w.w.Close() })
	return err
}
