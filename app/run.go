package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/engine"
	"github.com/adtrd/adtrd/engine/vet"
	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/systemd"
)

// RunOptions say which config Run runs and with what.
type RunOptions struct {
	// Path is the config file ("": the built-in demo, no file watched).
	Path string
	// Override is applied to every config read (the command line's --loop); nil: none.
	Override func(*config.Config)
	// Level is the log level a reload's log.level sets.
	Level *slog.LevelVar
	// Engines open the models (model.engine).
	Engines engine.Factories
	// VetExe is the binary run as the vetting child (`adtrd vet-model`) before a
	// reloaded model is loaded here; "": reloaded models are not vetted (a warning).
	VetExe string
	// Reloads are reload requests from outside (SIGHUP: `systemctl reload`), named by
	// their cause; nil: only file changes reload.
	Reloads <-chan string
	// Version is what the page and the metrics report.
	Version string
	Log     *slog.Logger
}

// Run starts each part of the line in order (generation, source, pins, pipeline,
// the operators' view, reloads, systemd's supervision) and closes the started ones
// on any failure.
// Config changes (file events, SIGHUP, `systemctl reload`) are applied by swapping
// generations while it runs. The summary is nil when the pipeline never ran.
//
// A stop (ctx cancelled by SIGTERM or SIGINT) fits one budget, StopBudget from the
// signal, under the unit's TimeoutStopSec: the queued frames of triggered parts are
// decided only while their parts could still be ejected within it (the rest take the
// fail-safe), the wait for a reload in progress and the wait for the parts in flight
// end at its deadline, and what is still in flight then is abandoned, counted and
// named in the summary, with every output inactive. Reaching the budget is no
// failure: the exit is 0.
func Run(ctx context.Context, o RunOptions) (*daemon.Summary, error) {
	path, log := o.Path, o.Log
	var stopAt atomic.Int64 // when the stop signal came (Unix ns; 0: none yet)
	defer context.AfterFunc(ctx, func() { stopAt.Store(time.Now().UnixNano()) })()
	interval, err := systemd.WatchdogInterval()
	if err != nil {
		return nil, err
	}
	notify := systemd.NewNotifier(log.With("component", "systemd"))
	build := Build(o.Engines)
	var vetter *vet.Vetter
	if o.VetExe == "" {
		log.Warn("models are loaded here without being vetted in a child first: no vetting binary")
	} else {
		vetter = &vet.Vetter{Exe: o.VetExe, Limits: vet.DefaultLimits, Log: log.With("component", "vet")}
		// The first model is vetted too: one that crashes or hangs the runtime is then
		// one line and a failed start (systemd restarts it), not a crash dump, or a
		// start that hangs deaf to SIGTERM inside the inference. The reloader vets the
		// later ones itself.
		first := build
		build = func(n uint64, cfg config.Config, log *slog.Logger) (*daemon.Generation, error) {
			if n == 1 {
				if err := vetter.Vet(ctx, cfg.Model); err != nil {
					return nil, err
				}
			}
			return first(n, cfg, log)
		}
	}
	rl, gen, err := daemon.NewReloader(path, build, o.Override, o.Level, notify, log.With("component", "reload"))
	if err != nil {
		return nil, err
	}
	defer rl.Close()
	if vetter != nil {
		rl.VetWith(vetter)
	}
	cfg := gen.Config
	meta := rl.Meta()
	size := capture.Size{W: meta.Input.Width, H: meta.Input.Height}
	src, err := OpenSource(Sources(), cfg.Capture, size, log)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	line, err := OpenLine(cfg, log.With("component", "line"))
	if err != nil {
		return nil, err
	}
	// Every exit path, signals included, ends here: outputs inactive, lines released.
	defer line.Close()
	p, err := daemon.New(daemon.Settings{
		Queue: cfg.Capture.Queue, InFlight: cfg.Tracking.InFlight,
		FrameBefore: time.Duration(cfg.Input.Trigger.FrameBefore), FrameAfter: time.Duration(cfg.Input.Trigger.FrameAfter),
		// A part decided after this still reaches the ejector inside the budget.
		Drain: func(cur config.Config) time.Duration { return StopBudget - max(travel(cfg), travel(cur)) },
	}, gen, src, line.Tracker, log.With("component", "pipeline"))
	if err != nil {
		return nil, err
	}
	rl.Attach(p, line.Tracker)
	line.Start()
	v, err := startView(cfg, path, o.Version, p, line.Tracker, rl, log)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	reloads := watchReloads(runCtx, path, o.Reloads, rl, log)
	log.Info("running", "frames", src.Len(), "threshold", events.Round4(gen.Threshold), "fail_safe", cfg.FailSafe.String(), "generation", gen.N)
	status := statusLine(p, rl)
	// Every goroutine started here is joined before STOPPING=1, so nothing reaches
	// systemd after it.
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		// READY only once a frame has been scored: the model, the camera and the
		// outputs have all worked once.
		select {
		case <-p.FirstFrame():
			notify.ReadyStatus(status())
		case <-runCtx.Done():
		}
	}()
	go func() {
		defer wg.Done()
		// The one progress monitor: the watchdog pings, and the heartbeat and ready
		// outputs, which a hung inference stops as it stops the pings.
		systemd.Supervise(runCtx, notify, systemd.Monitor{
			Watchdog: interval, Check: 2 * time.Second, StatusEvery: 5 * time.Second,
			Progress: p.Progress(), Status: status, Health: line.SetHealthy,
		}, log.With("component", "watchdog"))
	}()
	_, runErr := p.Run(ctx)
	stop()
	wg.Wait()
	stopping := ctx.Err() != nil
	var deadline time.Time // the stop budget's end
	if stopping {
		at := time.Unix(0, stopAt.Load())
		if stopAt.Load() == 0 { // AfterFunc's goroutine has not run yet
			at = time.Now()
		}
		deadline = at.Add(StopBudget)
	}
	// A reload stuck in a read that blocks (a hung network mount) must not hold the
	// stop: it is given a moment and then left behind, since the process is exiting.
	reloadWait := reloadStopWait
	if stopping {
		reloadWait = max(min(reloadWait, time.Until(deadline)), 0)
	}
	select {
	case <-reloads:
	case <-time.After(reloadWait):
		log.Warn("stopping without waiting for a reload still in progress", "waited", reloadWait)
	}
	notify.Stopping()
	// Parts still between camera and ejector get their pulses (or fail-safe) before
	// the outputs go inactive. They may have been stamped under the first generation or
	// the current one (a reload may have changed the delay), so the wait covers the
	// longer travel. On a stop signal it ends at the stop budget's deadline, so that
	// systemd never has to kill the process with outputs on, and sooner when only
	// parts due after it are left. At the natural end of the frames nothing is waiting
	// to kill it: every part gets its full travel.
	var flushCtx context.Context
	var cancel context.CancelFunc
	if stopping {
		flushCtx, cancel = context.WithDeadline(context.Background(), deadline)
		log.Info("stopping: waiting for the parts in flight due inside the stop budget", "up_to", time.Until(deadline).Round(time.Millisecond))
	} else {
		wait := max(travel(cfg), travel(rl.Config()))
		flushCtx, cancel = context.WithTimeout(context.Background(), wait)
		log.Info("stopping: waiting for the parts in flight", "up_to", wait)
	}
	defer cancel()
	flushErr := line.Flush(flushCtx)
	if flushErr != nil && stopping {
		// Not a failure: a stop has a budget, and the summary names what it left.
		log.Warn("stop budget reached: the parts still in flight are not ejected (outputs now inactive)",
			"budget", StopBudget, "in_flight", line.Stats().InFlight, "reason", flushErr.Error())
		flushErr = nil
	} else if flushErr != nil {
		flushErr = fmt.Errorf("parts still in flight are not ejected (outputs now inactive): %w", flushErr)
	}
	// Outputs inactive now; the parts left in flight are reported abandoned, so the
	// account below counts them. Escapes and rejects not pulsed are counted as parts
	// reach the ejector: the account is taken once they all have.
	closeErr := line.Close()
	sum := p.Summary()
	sum.Line = line.Stats()
	if k := sum.KeepUp(); k != "" {
		log.Warn(k)
	}
	return &sum, errors.Join(runErr, flushErr, closeErr)
}

// reloadStopWait is how long a stop waits for a reload in progress.
const reloadStopWait = time.Second

// StopBudget is how long a stop may take from the signal to the outputs inactive
// and the summary: under the shipped unit's TimeoutStopSec=15s
// (systemd/adtrd.service), with 3 s left for closing the camera, the page and the
// engine and for exiting.
const StopBudget = 12 * time.Second

// travel is the longest a part stamped under cfg can still need the outputs.
func travel(cfg config.Config) time.Duration {
	return time.Duration(cfg.Output.Reject.Delay) + time.Duration(cfg.Output.Reject.Pulse) + time.Second
}

// statusLine describes the running daemon for `systemctl status`: generation, model,
// frame rate since the previous call, last score, and the last failed reload if any.
func statusLine(p *daemon.Pipeline, rl *daemon.Reloader) func() string {
	var mu sync.Mutex
	lastN, lastT := uint64(0), time.Now()
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		g := p.Generation()
		n, now := p.Stats.Frames.Load(), time.Now()
		fps := float64(n-lastN) / now.Sub(lastT).Seconds()
		lastN, lastT = n, now
		line := fmt.Sprintf("generation %d, model %.12s, %.1f fps, last score %.3f (threshold %.3f), %d frames, %d rejects",
			g.N, g.ModelSHA, fps, p.LastScore(), g.Threshold, n, p.Stats.Rejects.Load())
		if n := p.Stats.Skipped.Load(); n > 0 {
			line += fmt.Sprintf(", %d frames skipped (the source is faster than inference)", n)
		}
		if at := p.CameraLost(); !at.IsZero() {
			line += fmt.Sprintf("; CAMERA LOST for %v (parts take the fail-safe)", time.Since(at).Round(time.Second))
		}
		if st := rl.Status(); st.Failed > 0 {
			line += fmt.Sprintf("; %d failed reloads, last at %s: %.200s", st.Failed, st.LastErrorAt.Format(time.TimeOnly), st.LastError)
		}
		return line
	}
}

// watchReloads applies reloads from file events and requests (SIGHUP, what
// `systemctl reload` sends) until ctx ends; the returned channel closes when it has.
func watchReloads(ctx context.Context, path string, requests <-chan string, rl *daemon.Reloader, log *slog.Logger) <-chan struct{} {
	done := make(chan struct{})
	var w *config.Watcher
	if path != "" {
		var err error
		if w, err = config.NewWatcher(100*time.Millisecond, log); err != nil {
			log.Error("config changes will not be seen; SIGHUP still reloads", "err", err)
		}
	}
	go func() {
		defer close(done)
		rl.Serve(ctx, w, requests)
	}()
	return done
}
