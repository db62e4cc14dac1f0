package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/gpio"
	"github.com/adtrd/adtrd/internal/safefile"
	"github.com/adtrd/adtrd/model"
)

var (
	// ErrRestart: the new config changes keys that cannot change live.
	ErrRestart = errors.New("needs a restart")
	// ErrNotRunning: the reloader has no generation yet.
	ErrNotRunning = errors.New("no generation running")
)

// LiveLine is the part of the tracker a reload changes.
type LiveLine interface {
	SetTiming(delay, pulse time.Duration, fs gpio.FailSafe)
}

// Notifier is told when a reload starts and ends (systemd.Notifier).
type Notifier interface {
	Reloading()
	Ready()
	Status(string)
}

// Reloader applies config changes as whole generations (caddy's Load): read and
// decode strictly, validate, refuse keys that need a restart, build the new engine
// and warm it up beside the running one, swap between two frames, close the old.
// Any failure keeps the running generation; an unchanged config is a no-op.
type Reloader struct {
	path     string // "" for the built-in demo config
	override func(*config.Config)
	build    Builder
	log      *slog.Logger
	level    *slog.LevelVar
	notify   Notifier

	// serial makes reloads one at a time; mu guards the state below only briefly, never
	// across a file read or a model build, so that Config, Status and Close answer at
	// once even while a reload is stuck reading (a hung network mount).
	serial sync.Mutex
	mu     sync.Mutex
	closed bool
	bus    *events.Bus // the pipeline's, from Attach: reloads applied and failed
	p      *Pipeline
	line   LiveLine
	cur    *Generation
	fp     fingerprint
	status events.ReloadStatus

	// vet, if set, loads a changed model in a child before this process does
	// (fp.model says when it changed); vetAbort kills one in progress at Close.
	vet      ModelVetter
	vetCtx   context.Context
	vetAbort context.CancelFunc
}

// ModelVetter loads a model that comes from outside in a child process and runs one
// warm-up inference there (vet.Vetter): a graph that crashes or hangs the runtime
// kills the child, and the reload is refused with the running generation kept.
type ModelVetter interface {
	Vet(ctx context.Context, m config.Model) error
}

// VetWith has every reload that changes the model (its section in the config, the
// graph or the metadata) vetted by v before the new generation is built here.
func (r *Reloader) VetWith(v ModelVetter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.vet = v
}

// NewReloader loads path (or the built-in demo config when path is "") and builds
// generation 1 with build (Build with the binary's engines). override, if not
// nil, is applied to every config read (command-line flags); level, if not nil,
// follows log.level.
func NewReloader(path string, build Builder, override func(*config.Config), level *slog.LevelVar, notify Notifier, log *slog.Logger) (*Reloader, *Generation, error) {
	if build == nil {
		return nil, nil, errors.New("daemon: NewReloader needs a Builder")
	}
	r := &Reloader{path: path, override: override, build: build, log: log, level: level, notify: notify}
	r.vetCtx, r.vetAbort = context.WithCancel(context.Background())
	cfg, fp, err := r.read()
	if err != nil {
		return nil, nil, err
	}
	g, err := build(1, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	warning, err := g.CheckThreshold()
	if err != nil {
		return nil, nil, errors.Join(err, g.Close())
	}
	if warning != "" {
		log.Warn("threshold: "+warning, "generation", g.N)
	}
	r.cur, r.fp = g, fp
	r.status.Generation, r.status.ModelSHA = 1, g.ModelSHA
	r.setLevel(cfg)
	return r, g, nil
}

// Attach gives the reloader the running pipeline and tracker to swap into.
func (r *Reloader) Attach(p *Pipeline, line LiveLine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.p, r.line, r.bus = p, line, p.Events()
}

// Config is the running generation's config.
func (r *Reloader) Config() config.Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur.Config
}

// Files are the files whose change means a reload: the config, the model and its metadata.
func (r *Reloader) Files() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.path == "" {
		return nil
	}
	m := r.cur.Config.Model
	return []string{r.path, m.Path, m.MetadataPath()}
}

// Status returns the reload counters and the last error.
func (r *Reloader) Status() events.ReloadStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// fingerprint is what a reload compares: the whole (config file, model and metadata
// files) and the model alone (its config section and its two files).
type fingerprint struct {
	all, model [32]byte
	graph      string // the graph file's sha256, hex
}

// read decodes the config and fingerprints it with its model and metadata files.
func (r *Reloader) read() (config.Config, fingerprint, error) {
	var b []byte
	name := "(built-in demo config)"
	if r.path != "" {
		var err error
		if b, err = safefile.Read(r.path, config.MaxFileBytes); err != nil {
			return config.Config{}, fingerprint{}, fmt.Errorf("%w: %v", config.ErrInvalid, err)
		}
		name = r.path
	}
	cfg, err := config.Parse(name, b)
	if err != nil {
		return cfg, fingerprint{}, err
	}
	if r.override != nil {
		r.override(&cfg)
	}
	section, err := json.Marshal(cfg.Model)
	if err != nil {
		return cfg, fingerprint{}, fmt.Errorf("model: %w", err)
	}
	all, mod := sha256.New(), sha256.New()
	all.Write(b)
	mod.Write(section)
	var fp fingerprint
	for i, f := range []string{cfg.Model.Path, cfg.Model.MetadataPath()} {
		data, err := safefile.Read(f, model.MaxGraphBytes)
		if err != nil {
			return cfg, fingerprint{}, fmt.Errorf("model: %v", err)
		}
		s := sha256.Sum256(data)
		if i == 0 {
			fp.graph = hex.EncodeToString(s[:])
		}
		all.Write(s[:])
		mod.Write(s[:])
	}
	copy(fp.all[:], all.Sum(nil))
	copy(fp.model[:], mod.Sum(nil))
	return cfg, fp, nil
}

// Reload applies the file as it is now. reason is logged ("SIGHUP", a file event...).
func (r *Reloader) Reload(reason string) error {
	r.serial.Lock()
	defer r.serial.Unlock()
	r.mu.Lock()
	cur, curFP, closed, vet := r.cur, r.fp, r.closed, r.vet
	r.mu.Unlock()
	if cur == nil || closed {
		return ErrNotRunning
	}
	start := time.Now()
	cfg, fp, err := r.read()
	if err == nil && fp.all == curFP.all {
		r.mu.Lock()
		r.status.Unchanged++
		r.mu.Unlock()
		r.log.Debug("reload: nothing changed", "reason", reason)
		return nil
	}
	if r.notify != nil {
		r.notify.Reloading()
		defer func() {
			r.notify.Ready()
			st := r.Status()
			r.notify.Status(fmt.Sprintf("generation %d, model %s", st.Generation, shortSHA(st.ModelSHA)))
		}()
	}
	if err == nil {
		if keys := config.RestartKeys(cur.Config, cfg); len(keys) > 0 {
			err = fmt.Errorf("%w: %s changed; nothing was applied (live keys: %s)", ErrRestart, strings.Join(keys, ", "), strings.Join(config.LiveKeys(), ", "))
		}
	}
	vetted := err == nil && vet != nil && fp.model != curFP.model
	if vetted {
		err = vet.Vet(r.vetCtx, cfg.Model)
	}
	var g *Generation
	var warning string
	if err == nil {
		g, err = r.build(cur.N+1, cfg, r.log)
	}
	if err == nil && vetted && !strings.EqualFold(g.ModelSHA, fp.graph) {
		// The file was replaced again while the child had it: what is loaded here is not
		// what was vetted. The write that replaced it is an event of its own.
		err = fmt.Errorf("model %s changed while it was vetted (sha256 %s.., vetted %s..): not applied", cfg.Model.Path, shortSHA(g.ModelSHA), shortSHA(fp.graph))
	}
	if err == nil {
		warning, err = g.CheckThreshold()
	}
	if err == nil && g.Scorer.Params().Size != cur.Scorer.Params().Size {
		err = fmt.Errorf("%w: the new model's input is %dpx, the running one's %dpx (frames are sized at start)", ErrRestart, g.Scorer.Params().Size, cur.Scorer.Params().Size)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil && r.closed {
		err = ErrNotRunning
	}
	if err == nil && r.p != nil {
		var old *Generation
		if old, err = r.p.Swap(g); err == nil && old != nil && old != cur {
			err = fmt.Errorf("daemon: the pipeline held generation %d, expected %d", old.N, cur.N)
		}
	}
	if err != nil && r.closed {
		// Stopping: a reload cut short (its vetting child killed by Close) is no
		// failure, and the status and events have no reader left.
		if g != nil {
			g.Close()
		}
		r.log.Info("reload abandoned: the daemon is stopping", "reason", reason, "generation", cur.N, "err", oneLine(err))
		return err
	}
	if err != nil {
		if g != nil {
			g.Close()
		}
		r.status.Failed++
		r.status.LastError, r.status.LastErrorAt = oneLine(err), time.Now()
		r.log.Error("reload failed: still running the previous generation", "reason", reason, "generation", cur.N, "err", r.status.LastError)
		if r.bus != nil {
			r.bus.Publish(events.Event{Kind: events.EventReload, Time: time.Now(), Gen: cur.N, Model: cur.ModelSHA, Threshold: cur.Threshold, Err: r.status.LastError})
		}
		return err
	}
	if r.line != nil {
		r.line.SetTiming(time.Duration(cfg.Output.Reject.Delay), time.Duration(cfg.Output.Reject.Pulse), g.FailSafe)
	}
	r.cur, r.fp = g, fp
	r.setLevel(cfg)
	r.status.Applied++
	r.status.Generation, r.status.ModelSHA = g.N, g.ModelSHA
	closeErr := cur.Close()
	r.log.Info("reloaded", "reason", reason, "generation", g.N, "model", shortSHA(g.ModelSHA), "threshold", events.Round4(g.Threshold),
		"changed", strings.Join(config.Diff(cur.Config, cfg), ","), "took", time.Since(start).Round(time.Millisecond))
	if warning != "" {
		r.log.Warn("threshold: "+warning, "generation", g.N)
	}
	if r.bus != nil {
		r.bus.Publish(events.Event{Kind: events.EventReload, Time: time.Now(), Gen: g.N, Model: g.ModelSHA, Threshold: g.Threshold})
	}
	return closeErr
}

func (r *Reloader) setLevel(cfg config.Config) {
	if r.level != nil {
		r.level.Set(cfg.Log.SlogLevel())
	}
}

// Close frees the running generation (after the pipeline has stopped).
// It does not wait for a reload in progress: one that finishes later finds the
// reloader closed and frees what it built. Safe to call twice.
func (r *Reloader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.cur == nil {
		return nil
	}
	r.closed = true
	r.vetAbort() // a vetting child in progress is killed
	return r.cur.Close()
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// Meta is the running model's metadata.
func (r *Reloader) Meta() *model.Metadata {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur.Meta
}

// Serve reloads on w's file events (w may be nil) and on requests (SIGHUP...), one at
// a time, until ctx ends; it closes w. A failed reload is logged and counted by Reload
// and the line keeps running.
func (r *Reloader) Serve(ctx context.Context, w *config.Watcher, requests <-chan string) {
	var events <-chan string
	if w != nil {
		defer w.Close()
		if err := w.Watch(r.Files()...); err != nil {
			r.log.Error("config watch incomplete", "err", err)
		}
		events = w.C()
		go w.Run(ctx)
	}
	for {
		reason := ""
		asked := false
		select {
		case <-ctx.Done():
			return
		case reason = <-requests:
			asked = true
		case reason = <-events:
		}
		r.Reload(reason)
		if w != nil {
			// The config may name other files now, and links may point elsewhere; a
			// request (SIGHUP) re-arms every watch, in case a directory was replaced unseen.
			watch := w.Watch
			if asked {
				watch = w.Rearm
			}
			if err := watch(r.Files()...); err != nil {
				r.log.Error("config watch incomplete", "err", err)
			}
		}
	}
}
