package daemon_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/engine"
	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/gpio"
	"github.com/adtrd/adtrd/gpio/linetest"
	"github.com/adtrd/adtrd/internal/demoline"
	"github.com/adtrd/adtrd/internal/testlib"
	"github.com/adtrd/adtrd/model"
	"github.com/adtrd/adtrd/score"
)

// An untriggered camera faster than inference (field: the fake GigE camera gave 7,423
// fail-safe rejects in 7 minutes): the frames it delivers while the queue is full, or
// that wait in a deep queue past the point where their decision could reach the
// ejector, are skipped and counted, with no part and no pulse. Every part the tracker
// got was decided; the summary says the line could not keep up and points at bench.
// The tracker's clock stands still (rig delay 0: 1 s of delay, no part ever late), so
// what is skipped follows only from the pipeline's own times.
func TestFasterCameraSkipsFramesWithoutParts(t *testing.T) {
	meta, err := model.Load(testlib.Demo("adtr.tflite.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		frames int
		queue  int
	}{
		// the demo frames at 200 fps into a queue of 2, 100 ms of inference: most find
		// the queue full
		{"queue full", 16, 2},
		// 32 frames into a queue of 64: none finds it full, but those that wait past
		// the 1 s delay (less the inference time) would be decided late
		{"too old", 32, 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := &slowEngine{fakeEngine: newFake(meta), d: 100 * time.Millisecond}
			src, err := capture.NewReplay(capture.ReplayOptions{Path: testlib.Demo("frames"), Loop: true, FPS: 200, Size: capture.Size{W: 224, H: 224}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { src.Close() })
			// One pass first: the replay decodes a file when it first plays it, which
			// under the race detector on a busy machine takes longer than an inference,
			// and the "camera" would then be no faster than the engine.
			for range src.Len() {
				if _, err := src.Next(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			r := newRig(t, eng, meta, demoline.Limited(src, tc.frames), rigSet{Queue: tc.queue}, 0)
			sum := r.run(t)
			s := r.line.Stats()
			if sum.Skipped == 0 || sum.Dropped != 0 || sum.Frames+sum.Skipped != uint64(tc.frames) {
				t.Fatalf("summary %s: want frames + skipped = %d, some skipped, none dropped", sum, tc.frames)
			}
			if s.Parts != sum.Frames || s.FailSafes() != 0 || s.Pulses != sum.Rejects {
				t.Fatalf("tracker %+v: want a part for each of the %d decided frames and no fail-safe", s, sum.Frames)
			}
			for _, rec := range r.recs {
				if rec.Wait >= time.Second {
					t.Fatalf("frame %d decided after waiting %v, past the 1 s delay", rec.Seq, rec.Wait)
				}
			}
			sum.Line = s
			if k := sum.KeepUp(); !strings.Contains(k, "frames were skipped") || !strings.Contains(k, "adtrd bench") {
				t.Fatalf("keep-up line %q", k)
			}
		})
	}
}

// spikyEngine infers in d, and in slow every nth call: a board whose inference time
// varies (another process, thermal throttling).
type spikyEngine struct {
	fakeEngine
	d, slow time.Duration
	nth, n  int
}

func (s *spikyEngine) Invoke() error {
	s.n++
	if s.n%s.nth == 0 {
		time.Sleep(s.slow)
	} else {
		time.Sleep(s.d)
	}
	return nil
}

// An untriggered camera faster than inference, on the real clock: the pipeline
// decides fresh frames, not the oldest ones still in time. Taken oldest-first with
// only a too-old check, every frame waited until just inside its reject time (the
// field: 160 ms of a 200 ms delay from a 1000 fps replay into a queue of 16), and each
// slower inference then made a part late: 71 fail-safe pulses in 20 s and the overrun
// alarm on an idle machine. Where even the median inference is slower than the delay,
// nothing can be decided in time and nothing is skipped for it: the parts take the
// fail-safe and the alarm is raised rather than hidden.
func TestFasterCameraDecidesFreshFrames(t *testing.T) {
	meta, err := model.Load(testlib.Demo("adtr.tflite.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		eng           engine.Engine
		queue, frames int
		fps           float64
		delay         time.Duration
		late          bool // every decided part is late (and the alarm is raised)
	}{
		// 20 ms, 80 ms every 5th, a 600 ms delay, 500 fps into a queue of 64: no part late
		{"spiky inference, deep queue", &spikyEngine{fakeEngine: newFake(meta), d: 20 * time.Millisecond, slow: 80 * time.Millisecond, nth: 5}, 64, 300, 500, 600 * time.Millisecond, false},
		// the same into a queue of 2
		{"spiky inference, short queue", &spikyEngine{fakeEngine: newFake(meta), d: 20 * time.Millisecond, slow: 80 * time.Millisecond, nth: 5}, 2, 300, 500, 600 * time.Millisecond, false},
		// 60 ms of inference against a 40 ms delay: all late, alarm
		{"inference slower than the delay", &slowEngine{fakeEngine: newFake(meta), d: 60 * time.Millisecond}, 4, 40, 200, 40 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := capture.NewReplay(capture.ReplayOptions{Path: testlib.Demo("frames"), Loop: true, FPS: tc.fps, Size: capture.Size{W: 224, H: 224}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { src.Close() })
			r := newRig(t, tc.eng, meta, demoline.Limited(src, tc.frames), rigSet{Queue: tc.queue, InFlight: 64}, tc.delay)
			sum := r.run(t)
			s := r.line.Stats()
			if sum.Frames == 0 || sum.Skipped == 0 || sum.Frames+sum.Skipped+sum.Undecided != uint64(tc.frames) || s.Parts != sum.Frames {
				t.Fatalf("summary %s, tracker %+v: want %d frames decided or skipped, some of each, a part per decided frame", sum, s, tc.frames)
			}
			if !tc.late {
				if s.FailSafes() != 0 || s.LateDecisions != 0 || r.line.Alarm() {
					t.Fatalf("tracker %+v, alarm %v: want every part decided in time", s, r.line.Alarm())
				}
				return
			}
			if s.FailSafe[gpio.CauseLate] != sum.Frames || !r.line.Alarm() {
				t.Fatalf("tracker %+v, alarm %v: want each of the %d parts late and the alarm raised", s, r.line.Alarm(), sum.Frames)
			}
		})
	}
}

// triggered is a triggered line on a manual clock (parts from a gpiotest trigger pin,
// frames handed in by the test) whose inference waits for the test's gate.
type triggered struct {
	p     *daemon.Pipeline
	tr    *gpio.Tracker
	clk   *linetest.Clock
	eng   *gatedEngine
	t0    time.Time
	part  func(at time.Duration) // a trigger edge at t0+at and its frame 10 ms later
	stray func(at time.Duration) // a frame at t0+at for no part
	mu    sync.Mutex
	kinds map[events.EventKind]int
	recs  []events.Record
	stop  func()
}

func newTriggered(t *testing.T, set daemon.Settings) *triggered {
	meta, err := model.Load(testlib.Demo("adtr.tflite.json"))
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := score.New(meta.ScoreParams())
	// A minute ahead of the wall clock: the matcher's own expiry never acts here.
	l := &triggered{t0: time.Now().Add(time.Minute), kinds: map[events.EventKind]int{}}
	l.clk = linetest.NewClock(l.t0)
	trig := linetest.NewInput("trigger")
	l.tr, err = gpio.New(gpio.Options{
		Reject: gpio.Output{Name: "reject", Pin: linetest.NewRecorder("reject", l.clk)}, Alarm: gpio.Output{Name: "alarm", Pin: linetest.NewRecorder("alarm", l.clk)},
		Trigger: gpio.Input{Name: "trigger", Pin: trig},
		Delay:   10 * time.Second, Pulse: 50 * time.Millisecond, Debounce: time.Millisecond, InFlight: 64, Clock: l.clk, Log: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.tr.Close() })
	l.tr.Start()
	l.eng = &gatedEngine{slowEngine: slowEngine{fakeEngine: newFake(meta)}, gate: make(chan struct{})} // closed: inference waits
	cam := &chanCamera{ch: make(chan capture.Frame)}
	gen := &daemon.Generation{N: 1, Engine: l.eng, Scorer: sc, Threshold: meta.Threshold, ModelSHA: meta.SHA256}
	set.FrameBefore, set.FrameAfter = 20*time.Millisecond, 100*time.Millisecond
	if l.p, err = daemon.New(set, gen, cam, l.tr, quiet); err != nil {
		t.Fatal(err)
	}
	l.stop = collect(t, l.p.Events().Subscribe(256), func(e events.Event) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.kinds[e.Kind]++
		if e.Kind == events.EventDecision {
			l.recs = append(l.recs, e.Record)
		}
	})
	pixels := make([]byte, meta.Input.Width*meta.Input.Height*3)
	l.part = func(at time.Duration) {
		l.clk.Set(l.t0.Add(at))
		trig.EdgesChan <- true
		trig.EdgesChan <- false
		l.tr.Sync()
		cam.ch <- capture.Frame{Seq: uint64(at / time.Millisecond), Time: l.t0.Add(at + 10*time.Millisecond), Pixels: pixels}
	}
	l.stray = func(at time.Duration) {
		cam.ch <- capture.Frame{Seq: uint64(at / time.Millisecond), Time: l.t0.Add(at), Pixels: pixels}
	}
	return l
}

// poll waits up to a generous deadline for cond.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30 s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A triggered line whose inference is behind keeps a fail-safe per dropped part, and
// the rate of those raises the overrun alarm, on the output, the bus and in the
// summary: 8 parts while inference waits, one in inference, two queued, five dropped;
// the fourth dropped part to reach the ejector raises it.
func TestTriggeredLineBehindRaisesTheOverrunAlarm(t *testing.T) {
	l := newTriggered(t, daemon.Settings{Queue: 2})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := l.p.Run(ctx); done <- err }()
	for i := range 8 {
		l.part(time.Duration(i) * 200 * time.Millisecond)
	}
	poll(t, "five frames dropped", func() bool { return l.p.Stats.Dropped.Load() == 5 })
	l.eng.set(true) // inference moves again: the three taken are decided
	poll(t, "three decisions", func() bool { l.mu.Lock(); defer l.mu.Unlock(); return len(l.recs) == 3 })
	linetest.Step(l.clk, l.tr, l.t0.Add(time.Minute)) // every part reaches the ejector
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	l.stop()
	s := l.tr.Stats()
	if s.FailSafe[gpio.CauseDropped] != 5 || s.Overruns != 1 || !l.tr.Alarm() || l.kinds[events.EventOverrun] != 1 || l.kinds[events.EventFailSafe] != 5 {
		t.Fatalf("tracker %+v, alarm %v, events %v: want 5 dropped parts, one overrun alarm and its event", s, l.tr.Alarm(), l.kinds)
	}
	sum := l.p.Summary()
	sum.Line = s
	if k := sum.KeepUp(); !strings.Contains(k, "frame dropped 5") || !strings.Contains(k, "overrun alarm was raised 1 times") || !strings.Contains(k, "adtrd bench") {
		t.Fatalf("keep-up line %q", k)
	}
}

// At a stop, the frames of triggered parts still queued are decided only within the
// drain the stop's budget allows; the rest take the fail-safe (cause "stopped") and
// are counted, so a full queue on a slow machine cannot hold the stop (field case 17).
func TestStopDecidesQueuedPartsOnlyWithinItsBudget(t *testing.T) {
	for _, tc := range []struct {
		name    string
		drain   func(config.Config) time.Duration
		decided int // of the 6 parts: one was in inference at the stop
	}{
		// no drain: only the frame in inference is decided
		{"none", nil, 1},
		// a budget already spent (negative: the travel is longer than the budget)
		{"spent", func(config.Config) time.Duration { return -time.Second }, 1},
		// a budget long enough: every queued part is decided
		{"ample", func(config.Config) time.Duration { return time.Hour }, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newTriggered(t, daemon.Settings{Queue: 8, Drain: tc.drain})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { _, err := l.p.Run(ctx); done <- err }()
			for i := range 6 {
				l.part(time.Duration(i) * 200 * time.Millisecond)
			}
			// Frames are matched in order: once a stray frame after them has been, every
			// part's frame is in inference or queued.
			l.stray(time.Minute)
			poll(t, "one frame in inference, five queued", func() bool { return l.p.Stats.Frames.Load() == 1 && l.p.Stats.Unmatched.Load() == 1 })
			cancel() // the stop, while inference waits
			l.eng.set(true)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			l.stop()
			linetest.Step(l.clk, l.tr, l.t0.Add(time.Minute))
			sum := l.p.Summary()
			left := 6 - tc.decided
			if len(l.recs) != tc.decided || sum.Undecided != uint64(left) || l.tr.Stats().FailSafe[gpio.CauseStopped] != uint64(left) {
				t.Fatalf("%d decided, summary %s, tracker %+v; want %d decided and %d stopped", len(l.recs), sum, l.tr.Stats(), tc.decided, left)
			}
		})
	}
}

// KeepUp says how the line fell behind, or nothing when it did not.
func TestKeepUpSaysHowTheLineFellBehind(t *testing.T) {
	var dropped, late, both gpio.Stats
	dropped.FailSafe[gpio.CauseDropped] = 3
	late.FailSafe[gpio.CauseLate] = 2
	both.FailSafe[gpio.CauseDropped], both.FailSafe[gpio.CauseLate], both.Overruns = 4, 1, 1
	for _, tc := range []struct {
		name string
		sum  daemon.Summary
		want []string // "" alone: no line
	}{
		// every frame decided in time, other fail-safes do not count
		{"kept up", daemon.Summary{Frames: 16, BadFrames: 1}, []string{""}},
		// a triggered line's dropped frames
		{"dropped", daemon.Summary{Frames: 13, Dropped: 3, Line: dropped}, []string{"3 parts fell to the fail-safe", "frame dropped 3, decision late 0", "adtrd bench"}},
		// decisions after their reject time
		{"late", daemon.Summary{Frames: 16, Line: late}, []string{"2 parts fell to the fail-safe", "decision late 2"}},
		// the alarm
		{"overrun", daemon.Summary{Frames: 60, Line: both}, []string{"5 parts", "overrun alarm was raised 1 times"}},
		// an untriggered camera's skipped frames, of all it delivered
		{"skipped", daemon.Summary{Frames: 8, Skipped: 8}, []string{"8 of 16 frames were skipped", "adtrd bench"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := tc.sum.KeepUp()
			if tc.want[0] == "" {
				if k != "" {
					t.Fatalf("keep-up line %q, want none", k)
				}
				return
			}
			for _, w := range tc.want {
				if !strings.Contains(k, w) {
					t.Fatalf("keep-up line %q lacks %q", k, w)
				}
			}
		})
	}
}
