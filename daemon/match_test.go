package daemon_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/capture/spec"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/gpio"
	"github.com/adtrd/adtrd/gpio/linetest"
	"github.com/adtrd/adtrd/internal/testlib"
	"github.com/adtrd/adtrd/score"
)

// chanCamera is a paced source whose frames the test hands in, with their capture
// times on the test's manual clock.
type chanCamera struct{ ch chan capture.Frame }

func (c *chanCamera) Next(ctx context.Context) (capture.Frame, error) {
	select {
	case f := <-c.ch:
		return f, nil
	case <-ctx.Done():
		return capture.Frame{}, ctx.Err()
	}
}
func (c *chanCamera) Paced() bool  { return true }
func (c *chanCamera) Close() error { return nil }

// With a trigger input and a camera, frames reach parts by time through the whole
// pipeline (trigger pin, tracker, matcher, inference): part 2's frame is lost, an
// extra frame comes between parts 2 and 3, and part 4's frame comes 150ms late. Parts
// 1 and 3 get their own frames, 2 and 4 take the fail-safe with cause "no frame", and
// the two stray frames are dropped and counted. The trigger is a gpiotest pin and the
// clock a manual one (no GPIO chip here).
func TestTriggeredCameraMatchesFramesByTime(t *testing.T) {
	eng, meta := newFloat(t, 1)
	sc, _ := score.New(meta.ScoreParams())
	// The manual clock runs a minute ahead, so that the matcher's own wall-clock expiry
	// (a part's window plus frameGrace) cannot act on a slow test machine: here only
	// frames' times expire parts.
	t0 := time.Now().Add(time.Minute)
	clk := linetest.NewClock(t0)
	trig := linetest.NewInput("trigger")
	tr, err := gpio.New(gpio.Options{
		Reject: gpio.Output{Name: "reject", Pin: linetest.NewRecorder("reject", clk)}, Trigger: gpio.Input{Name: "trigger", Pin: trig},
		Delay: 10 * time.Second, Pulse: 50 * time.Millisecond, Debounce: time.Millisecond, InFlight: 8, Clock: clk, Log: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	tr.Start()
	cam := &chanCamera{ch: make(chan capture.Frame)}
	gen := &daemon.Generation{N: 1, Engine: eng, Scorer: sc, Threshold: meta.Threshold, ModelSHA: meta.SHA256}
	p, err := daemon.New(daemon.Settings{Queue: 4, FrameBefore: 20 * time.Millisecond, FrameAfter: 100 * time.Millisecond}, gen, cam, tr, quiet)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var decided, noFrame []string
	stop := collect(t, p.Events().Subscribe(64), func(e events.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case e.Kind == events.EventDecision:
			decided = append(decided, fmt.Sprintf("%d:%s", e.Record.Part, e.Record.Name))
		case e.Kind == events.EventFailSafe:
			noFrame = append(noFrame, fmt.Sprintf("%d:%s", e.Part, e.Cause))
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := p.Run(ctx); done <- err }()
	pixels := make([]byte, meta.Input.Width*meta.Input.Height*3)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	trigger := func(at int) {
		clk.Set(ms(at))
		trig.EdgesChan <- true
		trig.EdgesChan <- false
		tr.Sync()
	}
	frame := func(name string, at int) {
		cam.ch <- capture.Frame{Seq: uint64(at), Time: ms(at), Name: name, Pixels: pixels}
	}
	trigger(0)
	frame("a", 30) // part 1's
	trigger(200)   // part 2: its frame never comes
	frame("extra", 350)
	trigger(400)
	frame("c", 430) // part 3's; part 2's window has passed
	trigger(600)
	frame("late", 750) // after part 4's window
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(decided) + len(noFrame)
		mu.Unlock()
		if n >= 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	stop()
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(decided, []string{"1:a", "3:c"}) || !slices.Equal(noFrame, []string{"2:no frame for trigger", "4:no frame for trigger"}) {
		t.Fatalf("decided %v, fail-safes %v; want [1:a 3:c] and no frame for 2 and 4", decided, noFrame)
	}
	if sum := p.Summary(); sum.Unmatched != 2 || sum.Frames != 2 {
		t.Fatalf("summary %s: want 2 frames decided and 2 matching no part", sum)
	}
}

// A real GigE Vision camera (Debian's arv-fake-gv-camera-0.8 on 127.0.0.1) through a
// triggered pipeline on the real clock: parts triggered while the camera is stopped
// take the fail-safe (cause "camera lost"), the loss is one event, and after the
// camera is started again a triggered part gets its frame and a decision.
func TestGigECameraLostAndBackThroughThePipeline(t *testing.T) {
	start := testlib.FakeGigECamera(t)
	testlib.Tool(t, "gst-launch-1.0")
	camera := start()
	// The camera's and the pipeline's log lines are printed when the test fails: a
	// second loss says why in them (a stall, the camera's control channel, an exit).
	var logs testlib.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	})
	eng, meta := newFloat(t, 1)
	sc, _ := score.New(meta.ScoreParams())
	trig := linetest.NewInput("trigger")
	sim, _ := gpio.NewSim("", quiet)
	tr, err := gpio.New(gpio.Options{
		Reject: gpio.Output{Name: "reject", Pin: sim.Pin("reject")}, Alarm: gpio.Output{Name: "alarm", Pin: sim.Pin("alarm")},
		Trigger: gpio.Input{Name: "trigger", Pin: trig},
		Delay:   5 * time.Second, Pulse: 10 * time.Millisecond, Debounce: time.Millisecond, InFlight: 16, Log: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	tr.Start()
	src, err := capture.NewCamera(capture.CameraOptions{
		Spec: spec.CameraSpec{URI: "gige://127.0.0.1", Width: 512, Height: 512}, Size: capture.Size{W: meta.Input.Width, H: meta.Input.Height},
		// Stall at the default (2 s): a shorter one reads a test process starved of CPU
		// (race detector, busy CI) as a second loss, which this test counts.
		Stall: capture.DefaultStall, FirstFrame: 3 * time.Second, BackoffMin: 100 * time.Millisecond, BackoffMax: 300 * time.Millisecond, Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	gen := &daemon.Generation{N: 1, Engine: eng, Scorer: sc, Threshold: meta.Threshold, ModelSHA: meta.SHA256}
	// a wide window: the fake camera's frame rate is low and its latency unknown here
	p, err := daemon.New(daemon.Settings{Queue: 2, FrameBefore: 0, FrameAfter: 400 * time.Millisecond}, gen, src, tr, log)
	if err != nil {
		t.Fatal(err)
	}
	evs := make(chan events.Event, 256)
	stop := collect(t, p.Events().Subscribe(256), func(e events.Event) { evs <- e })
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := p.Run(ctx); done <- err }()
	defer func() { cancel(); <-done }()
	trigger := func() {
		trig.EdgesChan <- true
		trig.EdgesChan <- false
	}
	// await returns the first event that ok accepts within d, counting the losses seen.
	losses := 0
	await := func(what string, d time.Duration, ok func(events.Event) bool) events.Event {
		t.Helper()
		timeout := time.After(d)
		for {
			select {
			case e := <-evs:
				if e.Kind == events.EventSourceLost {
					losses++
				}
				if ok(e) {
					return e
				}
			case <-timeout:
				t.Fatalf("no %s within %v", what, d)
			}
		}
	}
	decided := func(e events.Event) bool { return e.Kind == events.EventDecision && e.Record.Reason == events.ByScore }
	// the camera streams: a triggered part gets a frame (retried while it connects)
	for i := 0; ; i++ {
		trigger()
		select {
		case e := <-evs:
			if decided(e) {
				goto streaming
			}
		case <-time.After(500 * time.Millisecond):
		}
		if i == 40 {
			t.Fatal("no triggered part decided on the camera's frames within 20 s")
		}
	}
streaming:
	// Events from before the kill (the camera's start) are not this stop's.
	for drained := false; !drained; {
		select {
		case <-evs:
		default:
			drained = true
		}
	}
	camera.Process.Kill()
	camera.Wait()
	await("camera-lost event", 10*time.Second, func(e events.Event) bool { return e.Kind == events.EventSourceLost })
	trigger() // parts in the gap
	await("fail-safe for a part while the camera is lost", 5*time.Second, func(e events.Event) bool {
		return e.Kind == events.EventFailSafe && e.Cause == gpio.CauseCameraLost.String()
	})
	if !tr.Alarm() {
		t.Fatal("camera lost, alarm not latched")
	}
	start()
	await("camera back", 30*time.Second, func(e events.Event) bool { return e.Kind == events.EventSourceBack })
	for i := 0; ; i++ {
		trigger()
		select {
		case e := <-evs:
			if e.Kind == events.EventSourceLost {
				losses++
			}
			if decided(e) {
				if losses != 1 {
					t.Fatalf("%d camera-lost events for one stop of the camera", losses)
				}
				return
			}
		case <-time.After(500 * time.Millisecond):
		}
		if i == 40 {
			t.Fatal("no triggered part decided after the camera came back")
		}
	}
}
