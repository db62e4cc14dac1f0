package gpio_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	adgpio "github.com/adtrd/adtrd/gpio"
	"github.com/adtrd/adtrd/gpio/linetest"
)

// These tests run the tracker on a manual clock with periph's gpiotest pins (outputs
// wrapped to record their edges): there is no GPIO chip on the build machine.

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var t0 = time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)

const ms = time.Millisecond

type rig struct {
	clk                             *linetest.Clock
	tr                              *adgpio.Tracker
	reject, alarm, ready, heartbeat *linetest.Recorder
	trigger, encoder, confirm       *gpiotest.Pin
	inhibit, reset                  *gpiotest.Pin
}

// newRig wires every output and, when asked, inputs; mod adjusts the options.
func newRig(t *testing.T, inputs bool, mod func(*adgpio.Options)) *rig {
	t.Helper()
	r := &rig{clk: linetest.NewClock(t0)}
	r.reject = linetest.NewRecorder("reject", r.clk)
	r.alarm = linetest.NewRecorder("alarm", r.clk)
	r.ready = linetest.NewRecorder("ready", r.clk)
	r.heartbeat = linetest.NewRecorder("heartbeat", r.clk)
	opt := adgpio.Options{
		Reject: adgpio.Output{Name: "reject", Pin: r.reject},
		Alarm:  adgpio.Output{Name: "alarm", Pin: r.alarm},
		Ready:  adgpio.Output{Name: "ready", Pin: r.ready},
		Delay:  100 * ms, Pulse: 20 * ms, InFlight: 16, Clock: r.clk, Log: quiet,
	}
	if inputs {
		r.trigger, r.confirm, r.inhibit, r.reset = linetest.NewInput("trigger"), linetest.NewInput("confirm"), linetest.NewInput("inhibit"), linetest.NewInput("reset")
		opt.Trigger = adgpio.Input{Name: "trigger", Pin: r.trigger, Pull: gpio.PullDown}
		opt.Confirm = adgpio.Input{Name: "confirm", Pin: r.confirm, Pull: gpio.PullDown}
		opt.Inhibit = adgpio.Input{Name: "inhibit", Pin: r.inhibit, Pull: gpio.PullDown}
		opt.AlarmReset = adgpio.Input{Name: "reset", Pin: r.reset, Pull: gpio.PullDown}
		opt.ConfirmWindow = 50 * ms
		opt.Debounce = 5 * ms
	}
	if mod != nil {
		mod(&opt)
	}
	if opt.Encoder.Pin != nil {
		r.encoder = opt.Encoder.Pin.(*gpiotest.Pin)
	}
	tr, err := adgpio.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	tr.Start()
	r.tr = tr
	return r
}

// edge sends one level change on an input and waits until the tracker has taken it.
func (r *rig) edge(t *testing.T, pin *gpiotest.Pin, l gpio.Level) {
	t.Helper()
	before := r.tr.Stats().Edges
	pin.EdgesChan <- l
	deadline := time.Now().Add(5 * time.Second)
	for r.tr.Stats().Edges == before {
		if time.Now().After(deadline) {
			t.Fatalf("%s: edge never reached the tracker", pin.N)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func (r *rig) step(until time.Time) { linetest.Step(r.clk, r.tr, until) }

func wantPulses(t *testing.T, rec *linetest.Recorder, activeLow bool, want ...linetest.Pulse) {
	t.Helper()
	got := rec.Pulses(activeLow)
	if len(got) != len(want) {
		t.Fatalf("%s: %d pulses %v, want %d %v", rec.N, len(got), rel(got), len(want), rel(want))
	}
	for i := range want {
		if !got[i].On.Equal(want[i].On) || !got[i].Off.Equal(want[i].Off) {
			t.Fatalf("%s: pulses %v, want %v", rec.N, rel(got), rel(want))
		}
	}
}

func rel(ps []linetest.Pulse) [][2]time.Duration {
	out := make([][2]time.Duration, len(ps))
	for i, p := range ps {
		out[i] = [2]time.Duration{p.On.Sub(t0), p.Off.Sub(t0)}
	}
	return out
}

func pulse(on, width time.Duration) linetest.Pulse {
	return linetest.Pulse{On: t0.Add(on), Off: t0.Add(on + width)}
}

func TestPulsesStartAtStampPlusDelay(t *testing.T) {
	r := newRig(t, false, nil)
	a := r.tr.Stamp(t0)
	b := r.tr.Stamp(t0.Add(30 * ms))
	c := r.tr.Stamp(t0.Add(60 * ms))
	r.tr.Decide(a, true)
	r.tr.Decide(b, false)
	r.tr.Decide(c, true)
	r.step(t0.Add(time.Second))
	wantPulses(t, r.reject, false, pulse(100*ms, 20*ms), pulse(160*ms, 20*ms))
	if s := r.tr.Stats(); s.Pulses != 2 || s.Passes != 1 || s.FailSafes() != 0 || s.InFlight != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestOutOfOrderDecisionsGoToTheirOwnParts(t *testing.T) {
	r := newRig(t, false, nil)
	ids := make([]uint64, 6)
	for i := range ids {
		ids[i] = r.tr.Stamp(t0.Add(time.Duration(i) * 25 * ms)) // six parts in flight at once
	}
	// Decisions arrive last part first; only parts 1 and 4 are bad.
	for i := len(ids) - 1; i >= 0; i-- {
		r.tr.Decide(ids[i], i == 1 || i == 4)
	}
	r.step(t0.Add(time.Second))
	wantPulses(t, r.reject, false, pulse(125*ms, 20*ms), pulse(200*ms, 20*ms))
}

func TestOverlappingPulsesMerge(t *testing.T) {
	r := newRig(t, false, func(o *adgpio.Options) { o.Pulse = 40 * ms })
	a, b := r.tr.Stamp(t0), r.tr.Stamp(t0.Add(10*ms))
	r.tr.Decide(a, true)
	r.tr.Decide(b, true)
	r.step(t0.Add(time.Second))
	// The second pulse starts while the first is on: the output stays on until the later end.
	wantPulses(t, r.reject, false, pulse(100*ms, 50*ms))
	if s := r.tr.Stats(); s.Pulses != 2 {
		t.Fatalf("pulses %d, want 2 (merged on the wire)", s.Pulses)
	}
}

func TestMissedDeadlineFallsToTheFailSafe(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fs        adgpio.FailSafe
		cause     adgpio.Cause // Fail() before the deadline; CauseNone: no word at all
		wantCause adgpio.Cause
		pulses    int
		alarm     bool
	}{
		// no decision by the reject time: rejected by default
		{"late reject", adgpio.FailReject, adgpio.CauseNone, adgpio.CauseLate, 1, false},
		// the same part let through when the line says pass
		{"late pass", adgpio.FailPass, adgpio.CauseNone, adgpio.CauseLate, 0, false},
		// or through with the alarm raised
		{"late alarm", adgpio.FailAlarm, adgpio.CauseNone, adgpio.CauseLate, 0, true},
		// a dropped frame is rejected at the part's own time, not at once
		{"dropped reject", adgpio.FailReject, adgpio.CauseDropped, adgpio.CauseDropped, 1, false},
		// a failed inference under the alarm policy
		{"infer alarm", adgpio.FailAlarm, adgpio.CauseInferError, adgpio.CauseInferError, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, false, func(o *adgpio.Options) { o.FailSafe = tc.fs })
			id := r.tr.Stamp(t0)
			if tc.cause != adgpio.CauseNone {
				r.tr.Fail(id, tc.cause)
			}
			r.step(t0.Add(99 * ms))
			if len(r.reject.Pulses(false)) != 0 || r.tr.Alarm() {
				t.Fatal("acted before the part's reject time")
			}
			r.step(t0.Add(time.Second))
			r.tr.Decide(id, false) // too late: must not undo or add anything
			r.tr.Sync()
			s := r.tr.Stats()
			if got := len(r.reject.Pulses(false)); got != tc.pulses {
				t.Fatalf("%d pulses, want %d", got, tc.pulses)
			}
			if tc.pulses == 1 {
				wantPulses(t, r.reject, false, pulse(100*ms, 20*ms))
			}
			if r.tr.Alarm() != tc.alarm || (r.alarm.Level() == gpio.High) != tc.alarm {
				t.Fatalf("alarm %v (pin %v), want %v", r.tr.Alarm(), r.alarm.Level(), tc.alarm)
			}
			if s.FailSafe[tc.wantCause] != 1 || s.FailSafes() != 1 || s.LateDecisions != 1 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestTriggerDebounceStampsOnePartPerEdge(t *testing.T) {
	r := newRig(t, true, nil)
	// New configured the inputs with their bias (gpiotest keeps the pull it was given).
	for _, in := range []*gpiotest.Pin{r.trigger, r.confirm, r.inhibit, r.reset} {
		if in.P != gpio.PullDown {
			t.Fatalf("%s: pull %v, want down", in.N, in.P)
		}
	}
	r.edge(t, r.trigger, gpio.High) // the part arrives
	r.edge(t, r.trigger, gpio.Low)  // contact bounce, same instant
	r.edge(t, r.trigger, gpio.High)
	r.clk.Advance(4 * ms)
	r.edge(t, r.trigger, gpio.Low)
	r.edge(t, r.trigger, gpio.High) // still inside the 5 ms debounce
	r.edge(t, r.trigger, gpio.Low)
	r.clk.Advance(36 * ms)
	r.edge(t, r.trigger, gpio.High) // the next part, 40 ms later
	s := r.tr.Stats()
	if s.Triggers != 2 || s.Bounces != 2 {
		t.Fatalf("triggers %d bounces %d, want 2 and 2", s.Triggers, s.Bounces)
	}
	p1, p2 := <-r.tr.Parts(), <-r.tr.Parts()
	if !p1.At.Equal(t0) || !p2.At.Equal(t0.Add(40*ms)) || p2.ID != p1.ID+1 {
		t.Fatalf("parts %+v %+v", p1, p2)
	}
	r.tr.Decide(p2.ID, true)
	r.tr.Decide(p1.ID, false)
	r.step(t0.Add(time.Second))
	wantPulses(t, r.reject, false, pulse(140*ms, 20*ms))
}

func TestEncoderDelayFollowsTheBeltAtChangingSpeed(t *testing.T) {
	r := newRig(t, true, func(o *adgpio.Options) {
		o.Encoder = adgpio.Input{Name: "encoder", Pin: linetest.NewInput("encoder")}
		o.DelayCounts = 10
		o.Delay = 0
	})
	r.edge(t, r.trigger, gpio.High)
	part := <-r.tr.Parts()
	r.tr.Decide(part.ID, true)
	// The belt slows down and speeds up: edges 10 ms apart, then 40 ms, then 5 ms.
	gaps := []time.Duration{10, 10, 10, 40, 40, 40, 5, 5, 5, 5, 5}
	var at time.Duration
	var tenth time.Duration
	for i, g := range gaps {
		at += g * ms
		r.clk.Set(t0.Add(at))
		r.edge(t, r.encoder, gpio.High)
		r.tr.Sync()
		if i == 9 {
			tenth = at
		}
		if i < 9 && len(r.reject.Pulses(false)) != 0 {
			t.Fatalf("pulse after %d counts, want 10", i+1)
		}
	}
	r.step(t0.Add(time.Second))
	wantPulses(t, r.reject, false, pulse(tenth, 20*ms))
	if s := r.tr.Stats(); s.EncoderCounts != uint64(len(gaps)) {
		t.Fatalf("counts %d", s.EncoderCounts)
	}
}

func TestMissingConfirmationRaisesTheAlarm(t *testing.T) {
	r := newRig(t, true, nil)
	r.edge(t, r.trigger, gpio.High)
	p1 := <-r.tr.Parts()
	r.tr.Decide(p1.ID, true)
	r.step(t0.Add(110 * ms)) // pulse on at 100 ms
	r.edge(t, r.confirm, gpio.High)
	r.step(t0.Add(300 * ms))
	if r.tr.Alarm() {
		t.Fatal("alarm although the reject was confirmed")
	}
	r.edge(t, r.trigger, gpio.High) // part 2 at 300 ms, rejected, never confirmed
	p2 := <-r.tr.Parts()
	r.tr.Decide(p2.ID, true)
	r.step(t0.Add(449 * ms))
	if r.tr.Alarm() {
		t.Fatal("alarm before the window closed")
	}
	r.step(t0.Add(450 * ms)) // pulse at 400 ms + 50 ms window
	if !r.tr.Alarm() || r.alarm.Level() != gpio.High {
		t.Fatal("no alarm for the unconfirmed reject")
	}
	if s := r.tr.Stats(); s.Confirmed != 1 || s.Unconfirmed != 1 {
		t.Fatalf("stats %+v", s)
	}
	r.edge(t, r.reset, gpio.High) // the operator's reset button
	r.tr.Sync()
	if r.tr.Alarm() || r.alarm.Level() != gpio.Low {
		t.Fatal("alarm reset input did not clear the alarm")
	}
}

func TestInhibitSuppressesRejects(t *testing.T) {
	r := newRig(t, true, nil)
	r.edge(t, r.inhibit, gpio.High)
	r.edge(t, r.trigger, gpio.High)
	p := <-r.tr.Parts()
	r.tr.Decide(p.ID, true)
	r.step(t0.Add(200 * ms))
	r.edge(t, r.inhibit, gpio.Low)
	r.edge(t, r.trigger, gpio.High)
	p = <-r.tr.Parts()
	r.tr.Decide(p.ID, true)
	r.step(t0.Add(time.Second))
	wantPulses(t, r.reject, false, pulse(300*ms, 20*ms))
	if s := r.tr.Stats(); s.Inhibited != 1 || s.Pulses != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestFullFIFORaisesTheAlarm(t *testing.T) {
	r := newRig(t, false, func(o *adgpio.Options) { o.InFlight = 2 })
	r.tr.Stamp(t0)
	r.tr.Stamp(t0)
	r.tr.Stamp(t0)
	r.tr.Sync()
	if s := r.tr.Stats(); s.Overflows != 1 || !r.tr.Alarm() || s.InFlight != 2 {
		t.Fatalf("stats %+v alarm %v", s, r.tr.Alarm())
	}
	r.tr.ResetAlarm()
	r.tr.Sync()
	if r.tr.Alarm() {
		t.Fatal("ResetAlarm did not clear it")
	}
}

func TestHeartbeatAndReady(t *testing.T) {
	clk := linetest.NewClock(t0)
	hb := linetest.NewRecorder("heartbeat", clk)
	ready := linetest.NewRecorder("ready", clk)
	tr, err := adgpio.New(adgpio.Options{
		Reject:    adgpio.Output{Name: "reject", Pin: linetest.NewRecorder("reject", clk)},
		Ready:     adgpio.Output{Name: "ready", Pin: ready, ActiveLow: true},
		Heartbeat: adgpio.Output{Name: "heartbeat", Pin: hb}, HeartbeatPeriod: 500 * ms,
		Pulse: ms, InFlight: 1, Clock: clk, Log: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	tr.Start()
	tr.SetReady(true)
	linetest.Step(clk, tr, t0.Add(1600*ms))
	wantPulses(t, hb, false, pulse(0, 500*ms), pulse(time.Second, 500*ms))
	if ready.Level() != gpio.Low { // active-low: on is Low
		t.Fatal("ready is not on")
	}
	tr.SetReady(false)
	tr.Sync()
	if ready.Level() != gpio.High {
		t.Fatal("ready is not off")
	}
}

func TestCloseLeavesEveryOutputInactive(t *testing.T) {
	for _, tc := range []struct {
		name      string
		activeLow bool
		start     bool
	}{
		{"mid-pulse", false, true},           // closed while the reject is on
		{"mid-pulse active-low", true, true}, // inactive is High on an active-low pin
		{"never started", true, false},       // New succeeded, Start never ran
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := linetest.NewClock(t0)
			outs := map[string]*linetest.Recorder{}
			out := func(n string) adgpio.Output {
				outs[n] = linetest.NewRecorder(n, clk)
				return adgpio.Output{Name: n, Pin: outs[n], ActiveLow: tc.activeLow}
			}
			tr, err := adgpio.New(adgpio.Options{
				Reject: out("reject"), Alarm: out("alarm"), Ready: out("ready"), Heartbeat: out("heartbeat"),
				HeartbeatPeriod: 10 * ms, Delay: 10 * ms, Pulse: 50 * ms, InFlight: 4, FailSafe: adgpio.FailAlarm, Clock: clk, Log: quiet,
			})
			if err != nil {
				t.Fatal(err)
			}
			if tc.start {
				tr.Start()
				tr.SetReady(true)
				a := tr.Stamp(t0)
				tr.Stamp(t0) // never decided: raises the alarm
				tr.Decide(a, true)
				linetest.Step(clk, tr, t0.Add(15*ms))
				if outs["reject"].Level() == level(false, tc.activeLow) || !tr.Alarm() {
					t.Fatal("setup: reject not on, or no alarm")
				}
			}
			if err := tr.Close(); err != nil {
				t.Fatal(err)
			}
			if err := tr.Close(); err != nil { // twice is fine
				t.Fatal(err)
			}
			for n, rec := range outs {
				if rec.Level() != level(false, tc.activeLow) {
					t.Errorf("%s left %v", n, rec.Level())
				}
			}
			if id := tr.Stamp(t0); id != 0 {
				t.Fatal("stamp after close was taken")
			}
		})
	}
}

func level(active, activeLow bool) gpio.Level { return gpio.Level(active != activeLow) }

func TestNewRefusesBadOptions(t *testing.T) {
	pin := linetest.NewRecorder("p", nil)
	base := adgpio.Options{Reject: adgpio.Output{Name: "reject", Pin: pin}, Pulse: ms, InFlight: 4, Log: quiet}
	for _, tc := range []struct {
		name string
		mod  func(*adgpio.Options)
	}{
		{"no reject output", func(o *adgpio.Options) { o.Reject.Pin = nil }},
		{"zero pulse", func(o *adgpio.Options) { o.Pulse = 0 }},
		{"counts without encoder", func(o *adgpio.Options) { o.DelayCounts = 5 }},
		{"confirm without window", func(o *adgpio.Options) { o.Confirm = adgpio.Input{Name: "c", Pin: linetest.NewInput("c")} }},
		{"heartbeat without period", func(o *adgpio.Options) { o.Heartbeat = adgpio.Output{Name: "h", Pin: pin} }},
		{"empty FIFO", func(o *adgpio.Options) { o.InFlight = 0 }},
		{"no logger", func(o *adgpio.Options) { o.Log = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.mod(&o)
			if _, err := adgpio.New(o); !errors.Is(err, adgpio.ErrConfig) {
				t.Fatalf("err %v, want ErrConfig", err)
			}
		})
	}
}

func TestFlushWaitsForPartsInFlight(t *testing.T) {
	r := newRig(t, false, nil)
	r.tr.Decide(r.tr.Stamp(t0), true)
	done := make(chan error, 1)
	go func() { done <- r.tr.Flush(context.Background()) }()
	r.step(t0.Add(110 * ms)) // pulse on, not yet off
	select {
	case err := <-done:
		t.Fatalf("flush returned mid-pulse: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	r.step(t0.Add(120 * ms))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A reload's new delay and width apply to parts stamped after it; a part in flight
// keeps its time.
func TestSetTimingAppliesToLaterParts(t *testing.T) {
	r := newRig(t, false, nil)
	a := r.tr.Stamp(t0)
	r.tr.SetTiming(200*ms, 5*ms, adgpio.FailPass)
	b := r.tr.Stamp(t0.Add(10 * ms))
	c := r.tr.Stamp(t0.Add(20 * ms)) // never decided: now passes
	r.tr.Decide(a, true)
	r.tr.Decide(b, true)
	_ = c
	r.step(t0.Add(time.Second))
	wantPulses(t, r.reject, false, pulse(100*ms, 5*ms), pulse(210*ms, 5*ms))
	if s := r.tr.Stats(); s.FailSafe[adgpio.CauseLate] != 1 || s.Pulses != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// With kernel edge events (an EdgeReader input) a trigger pulse is stamped at its own
// rising edge, however late the watcher reads it and however short it was: here a
// 50 µs pulse, over long before the read, and two bounces inside the debounce.
func TestTriggerStampsTheKernelsEdgeTime(t *testing.T) {
	trig := linetest.NewEdgeInput("trigger")
	r := newRig(t, false, func(o *adgpio.Options) {
		o.Trigger = adgpio.Input{Name: "trigger", Pin: trig, Pull: gpio.PullDown}
		o.Debounce = 5 * ms
	})
	at := t0.Add(3 * ms)
	trig.Send(
		adgpio.EdgeEvent{Rising: true, At: at},
		adgpio.EdgeEvent{Rising: false, At: at.Add(50 * time.Microsecond)},
		adgpio.EdgeEvent{Rising: true, At: at.Add(1 * ms)}, // bounce
		adgpio.EdgeEvent{Rising: false, At: at.Add(2 * ms)},
		adgpio.EdgeEvent{Rising: true, At: at.Add(40 * ms)}, // the next part
	)
	var parts []adgpio.Part
	deadline := time.After(5 * time.Second)
	for len(parts) < 2 {
		select {
		case p := <-r.tr.Parts():
			parts = append(parts, p)
		case <-deadline:
			t.Fatalf("parts %+v; stats %+v", parts, r.tr.Stats())
		}
	}
	if !parts[0].At.Equal(at) || !parts[1].At.Equal(at.Add(40*ms)) {
		t.Fatalf("parts stamped at %v and %v, want the rising edges' %v and %v", parts[0].At, parts[1].At, at, at.Add(40*ms))
	}
	if s := r.tr.Stats(); s.Triggers != 2 || s.Bounces != 1 {
		t.Fatalf("triggers %d bounces %d, want 2 and 1", s.Triggers, s.Bounces)
	}
}

// An input that turns out to have no kernel edge events falls back to waiting for
// an edge and reading the level, as before.
func TestTriggerFallsBackWithoutEdgeEvents(t *testing.T) {
	trig := linetest.NewEdgeInput("trigger")
	trig.NoEvents = true
	r := newRig(t, false, func(o *adgpio.Options) {
		o.Trigger = adgpio.Input{Name: "trigger", Pin: trig, Pull: gpio.PullDown}
	})
	r.edge(t, trig.Pin, gpio.High)
	select {
	case p := <-r.tr.Parts():
		if !p.At.Equal(t0) {
			t.Fatalf("part at %v, want the arrival time %v", p.At, t0)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no part from the fallback path")
	}
}

// Every part gets exactly one Outcome, and Pulsed is what the reject output did for
// it: decisions, fail-safes, inhibit and a full FIFO (the summary's counts rest on it).
func TestOutcomeSaysWhatTheOutputDid(t *testing.T) {
	for _, tc := range []struct {
		name string
		fs   adgpio.FailSafe
		act  func(r *rig) // stamps parts and decides them
		want []adgpio.Outcome
	}{
		// decided reject, decided pass
		{"decisions", adgpio.FailReject, func(r *rig) {
			r.tr.Decide(r.tr.Stamp(t0), true)
			r.tr.Decide(r.tr.Stamp(t0), false)
		}, []adgpio.Outcome{{Part: 1, Pulsed: true}, {Part: 2, Pulsed: false}}},
		// no decision: the fail-safe pulses under reject, not under pass or alarm
		{"fail-safe reject", adgpio.FailReject, func(r *rig) { r.tr.Stamp(t0) }, []adgpio.Outcome{{Part: 1, Pulsed: true}}},
		{"fail-safe pass", adgpio.FailPass, func(r *rig) { r.tr.Stamp(t0) }, []adgpio.Outcome{{Part: 1, Pulsed: false}}},
		{"fail-safe alarm", adgpio.FailAlarm, func(r *rig) { r.tr.Stamp(t0) }, []adgpio.Outcome{{Part: 1, Pulsed: false}}},
		// a FIFO of 2: the third part is reported at once, not pulsed, and its reject
		// decision changes nothing
		{"full FIFO", adgpio.FailPass, func(r *rig) {
			a, b, c := r.tr.Stamp(t0), r.tr.Stamp(t0), r.tr.Stamp(t0)
			r.tr.Decide(c, true)
			r.tr.Decide(a, true)
			r.tr.Decide(b, true)
		}, []adgpio.Outcome{{Part: 3, Pulsed: false}, {Part: 1, Pulsed: true}, {Part: 2, Pulsed: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, false, func(o *adgpio.Options) { o.FailSafe, o.InFlight = tc.fs, 2 })
			var got []adgpio.Outcome // appended on the tracker's goroutine, read after Sync
			r.tr.Observe(func(o adgpio.Outcome) { got = append(got, o) })
			tc.act(r)
			r.step(t0.Add(time.Second))
			r.tr.Sync()
			if !slices.Equal(got, tc.want) {
				t.Fatalf("outcomes %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("inhibited", func(t *testing.T) {
		r := newRig(t, true, nil)
		var got []adgpio.Outcome
		r.tr.Observe(func(o adgpio.Outcome) { got = append(got, o) })
		r.edge(t, r.inhibit, gpio.High)
		r.edge(t, r.trigger, gpio.High)
		r.tr.Decide((<-r.tr.Parts()).ID, true)
		r.step(t0.Add(time.Second))
		r.tr.Sync()
		if want := []adgpio.Outcome{{Part: 1, Pulsed: false}}; !slices.Equal(got, want) {
			t.Fatalf("outcomes %v, want %v", got, want)
		}
	})
}
