// Package demoline runs the demo line in a test: the demo model (its recorded maps, or
// the real TFLite engine), a replay of the demo frames, a tracker on simulated pins.
package demoline

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/engine"
	"github.com/adtrd/adtrd/engine/enginetest"
	"github.com/adtrd/adtrd/gpio"
	"github.com/adtrd/adtrd/internal/testlib"
	"github.com/adtrd/adtrd/model"
)

// Options vary the line.
type Options struct {
	Frames string // a folder of frames; "": the demo frames
	Loop   bool   // replay them again and again
	// FPS paces the replay as a camera would be (frames that find the queue full are
	// skipped, so how many are decided depends on the machine); 0: as fast as
	// inference goes, every frame decided.
	FPS   float64
	Limit int // end after this many frames; 0: when the frames end
	// Gate, when set, hands the frames out one at a time: each waits for a receive
	// from it (closed: no more waiting), and none is skipped. A test whose run must
	// straddle something (a broker's restart) steps the line with it instead of
	// relying on a pace that a loaded machine does not keep.
	Gate <-chan struct{}
	// Open is the engine (engine/tflite's Opener: the real runtime, which needs cgo
	// and the library); nil: the demo's recorded maps (Recorded), which decide the
	// demo frames as the real engine does, at once and without cgo.
	Open engine.Opener
	// Threads for inference; 0: 1.
	Threads int
	Log     *slog.Logger
}

// Line is a running (or runnable) demo line.
type Line struct {
	Pipeline *daemon.Pipeline
	Tracker  *gpio.Tracker
	Gen      *daemon.Generation
	done     chan error
	cancel   context.CancelFunc
}

// New builds the line; Start runs it. Everything is closed by t.Cleanup.
func New(t testing.TB, opt Options) *Line {
	t.Helper()
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := config.Default()
	cfg.Model.Path, cfg.Model.Threads = testlib.Demo("adtr.tflite"), max(opt.Threads, 1)
	cfg.Capture.Replay.Labels = config.LabelsName
	open := opt.Open
	if open == nil {
		open = enginetest.OpenRecorded(Recorded(t))
	} else {
		cfg.Model.Library = testlib.TFLiteLibrary(t)
	}
	o, err := engine.Load("demo", open, cfg.Model, log)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := daemon.NewGeneration(1, cfg, o.Engine, o.Meta, o.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gen.Close() })
	if opt.Frames == "" {
		opt.Frames = testlib.Demo("frames")
	}
	src, err := capture.NewReplay(capture.ReplayOptions{Path: opt.Frames, Loop: opt.Loop, FPS: opt.FPS,
		Size: capture.Size{W: o.Meta.Input.Width, H: o.Meta.Input.Height}})
	if err != nil {
		t.Fatal(err)
	}
	sim, err := gpio.NewSim("", log)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := gpio.New(gpio.Options{
		Reject: gpio.Output{Name: "reject", Pin: sim.Pin("reject")}, Alarm: gpio.Output{Name: "alarm", Pin: sim.Pin("alarm")},
		Ready: gpio.Output{Name: "ready", Pin: sim.Pin("ready")},
		// 1 s of travel: decisions are in time even on a loaded 2-core machine.
		Delay: time.Second, Pulse: 10 * time.Millisecond, InFlight: 1024, Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	tr.Start()
	var source daemon.Source = src
	if opt.Limit > 0 {
		source = Limited(src, opt.Limit)
	}
	if opt.Gate != nil {
		source = &gated{source, opt.Gate}
	}
	p, err := daemon.New(daemon.Settings{Queue: 2}, gen, source, tr, log)
	if err != nil {
		t.Fatal(err)
	}
	return &Line{Pipeline: p, Tracker: tr, Gen: gen}
}

var recorded struct {
	once sync.Once
	maps map[[sha256.Size]byte][]int8
	err  error
}

// Recorded is the demo frames' maps (models/demo/golden.json, the TFLite interpreter's
// int8 maps) keyed by each frame's model input: the frame file decoded and fitted as
// the replay does.
func Recorded(t testing.TB) map[[sha256.Size]byte][]int8 {
	t.Helper()
	g := testlib.LoadGolden(t)
	recorded.once.Do(func() {
		meta, err := model.Load(testlib.Demo("adtr.tflite.json"))
		if err != nil {
			recorded.err = err
			return
		}
		size := capture.Size{W: meta.Input.Width, H: meta.Input.Height}
		recorded.maps = map[[sha256.Size]byte][]int8{}
		for _, f := range g.Frames {
			px, err := capture.LoadRGB(testlib.Demo("frames", f.File), size, capture.FitResize)
			if err != nil {
				recorded.err = err
				return
			}
			m := make([]int8, len(f.Map))
			for i, v := range f.Map {
				m[i] = int8(v)
			}
			recorded.maps[sha256.Sum256(px)] = m
		}
	})
	if recorded.err != nil {
		t.Fatalf("the demo's recorded maps: %v", recorded.err)
	}
	return recorded.maps
}

// Start runs the pipeline in the background until the frames end or t ends.
func (l *Line) Start(t testing.TB) {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel, l.done = cancel, make(chan error, 1)
	go func() { _, err := l.Pipeline.Run(ctx); l.done <- err }()
	t.Cleanup(func() { l.Stop(t) })
}

// Wait waits for the frames to end (not for a looping line: use Stop) and flushes
// the parts in flight, so that the summary and the tracker's stats are final.
func (l *Line) Wait(t testing.TB) daemon.Summary {
	t.Helper()
	select {
	case err := <-l.done:
		l.done <- err // Stop reads it again
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the demo line did not end")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Tracker.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sum := l.Pipeline.Summary()
	sum.Line = l.Tracker.Stats()
	return sum
}

// Stop ends the run. Safe twice.
func (l *Line) Stop(t testing.TB) {
	if l.cancel == nil {
		return
	}
	l.cancel()
	l.cancel = nil
	if err := <-l.done; err != nil {
		t.Errorf("demo line: %v", err)
	}
}

// Limited plays r for n frames and then ends, as a replay at its end does (a looping
// replay for exactly n frames).
func Limited(r *capture.Replay, n int) daemon.Source { return &limited{r, n} }

type limited struct {
	*capture.Replay
	n int
}

func (l *limited) Next(ctx context.Context) (capture.Frame, error) {
	if l.n == 0 {
		return capture.Frame{}, capture.ErrEOF
	}
	l.n--
	return l.Replay.Next(ctx)
}

// gated waits for a receive from gate before each frame; it waits for the queue as
// an unpaced replay does.
type gated struct {
	daemon.Source
	gate <-chan struct{}
}

func (g *gated) Next(ctx context.Context) (capture.Frame, error) {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return capture.Frame{}, ctx.Err()
	}
	return g.Source.Next(ctx)
}

func (g *gated) Paced() bool { return false }
