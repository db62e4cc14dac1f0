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

	mu      sync.Mutex
	files   []string
	names   map[string]bool // base names that matter in the watched dirs
	dirs    map[string]bool
	parents map[string]bool // the watched dirs' parents: where a replaced dir reappears
	lost    map[string]bool // watched dirs removed or renamed away: their watch is dead
	once    sync.Once
}

// rearmEvery is how often lost directories are looked for again, in case their
// parent was replaced too and no event announces them.
const rearmEvery = 2 * time.Second

// NewWatcher starts watching nothing; Watch sets the files.
func NewWatcher(debounce time.Duration, log *slog.Logger) (*Watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("config: watch: %w", err)
	}
	return &Watcher{w: fw, log: log, debounce: debounce, out: make(chan string, 1), names: map[string]bool{}, dirs: map[string]bool{},
		parents: map[string]bool{}, lost: map[string]bool{}}, nil
}

// C delivers reload requests (a reason); requests made while one waits are merged.
func (w *Watcher) C() <-chan string { return w.out }

// Watch makes files (and, for symlinks, their targets) the ones that matter, and
// watches their directories and those directories' parents (a provisioning tool that
// deletes and recreates the directory, or a deploy that swaps it by rename, kills the
// directory's own watch). Call it again after each reload: the config may now name
// other files, and links may point elsewhere. Lost directories are re-armed.
func (w *Watcher) Watch(files ...string) error {
	return w.watch(false, files)
}

// Rearm is Watch with every watch removed and added again (SIGHUP): a watch whose
// directory was replaced unseen is then on the directory there now.
func (w *Watcher) Rearm(files ...string) error {
	return w.watch(true, files)
}

func (w *Watcher) watch(all bool, files []string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.files = append(w.files[:0], files...)
	names, dirs, parents := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, f := range files {
		if f == "" {
			continue
		}
		for _, p := range chain(f) {
			names[filepath.Base(p)] = true
			dirs[filepath.Dir(p)] = true
		}
	}
	for d := range dirs {
		if p := filepath.Dir(d); p != d {
			parents[p] = true
		}
	}
	var errs []error
	for d := range dirs {
		if all || !w.dirs[d] || w.lost[d] {
			if err := w.add(d); err != nil {
				errs = append(errs, fmt.Errorf("config: watch %s: %w", d, err))
				w.lost[d] = true
				continue
			}
			if w.lost[d] {
				w.log.Info("config directory watched again", "dir", d)
			}
			delete(w.lost, d)
		}
	}
	for p := range parents {
		if (all || !w.parents[p] && !w.dirs[p]) && !dirs[p] {
			w.add(p) // best effort: without it, the 2 s re-check finds a replaced dir
		}
	}
	for d := range w.dirs {
		if !dirs[d] && !parents[d] {
			w.w.Remove(d)
			delete(w.lost, d)
		}
	}
	for p := range w.parents {
		if !parents[p] && !dirs[p] {
			w.w.Remove(p)
		}
	}
	w.names, w.dirs, w.parents = names, dirs, parents
	return errors.Join(errs...)
}

// add (re)places the watch on d: an old watch may be on a directory that was replaced.
func (w *Watcher) add(d string) error {
	w.w.Remove(d)
	return w.w.Add(d)
}

// dirEvent handles events about the watched directories themselves: one going away
// (its watch is dead: say so once) or one appearing in its parent (watch it again and
// reload, since its files may have changed). It reports whether to reload.
func (w *Watcher) dirEvent(ev fsnotify.Event) (handled, reload bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	d := filepath.Clean(ev.Name)
	if !w.dirs[d] {
		return false, false
	}
	switch {
	case ev.Op.Has(fsnotify.Remove) || ev.Op.Has(fsnotify.Rename):
		if !w.lost[d] {
			w.lost[d] = true
			w.log.Warn("config directory removed or renamed: changes are not seen until it is back (checked every 2 s; SIGHUP re-arms)", "dir", d)
		}
		return true, false
	case ev.Op.Has(fsnotify.Create) && w.lost[d]:
		return true, w.rearmLost(d)
	}
	return false, false
}

// rearmLost watches lost directory d again if it exists; the caller holds mu.
func (w *Watcher) rearmLost(d string) bool {
	if st, err := os.Stat(d); err != nil || !st.IsDir() {
		return false
	}
	if err := w.add(d); err != nil {
		return false
	}
	if w.lost[d] {
		w.log.Info("config directory back: watching it again", "dir", d)
	}
	delete(w.lost, d)
	return true
}

// recheck looks for lost directories; it reports whether one came back.
func (w *Watcher) recheck() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	back := false
	for d := range w.lost {
		if w.rearmLost(d) {
			back = true
		}
	}
	return back
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
	tick := time.NewTicker(rearmEvery)
	defer tick.Stop()
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
			handled, reload := w.dirEvent(ev)
			if handled && !reload || !handled && !w.relevant(ev) {
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
		case <-tick.C:
			if w.recheck() {
				request("config directory back")
			}
		}
	}
}

// Close stops watching; safe twice.
func (w *Watcher) Close() error {
	var err error
	w.once.Do(func() { err = w.w.Close() })
	return err
}
