package gpio_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	adgpio "github.com/adtrd/adtrd/gpio"
	"periph.io/x/conn/v3/gpio"
)

// The overrun alarm comes when OverrunParts of the last OverrunWindow parts fell to
// the fail-safe because the pipeline was behind (frame dropped, decision late), and
// not for bursts below that or for other causes. Each pattern is the parts in order:
// 'd' decided pass, 'x' frame dropped, 'l' no decision (late), 'c' camera lost,
// 'r' the alarm is reset before this part.
func TestOverrunAlarmFollowsTheRateOfBehindFailSafes(t *testing.T) {
	spread := func(n, every int, c byte) string { // n parts, every every-th one c
		b := make([]byte, n)
		for i := range b {
			b[i] = 'd'
			if (i+1)%every == 0 {
				b[i] = c
			}
		}
		return string(b)
	}
	for _, tc := range []struct {
		name     string
		parts    string
		overruns uint64
		at       []uint64 // the parts whose Outcome says Overrun
	}{
		// three drops in a burst: the queue could not absorb it, no alarm
		{"burst of three", "dddxxxdddd", 0, nil},
		// four drops among 64 parts (one in 16): the alarm, on the fourth
		{"four in 64", spread(64, 16, 'x'), 1, []uint64{64}},
		// four late decisions count as drops do
		{"late decisions", "dldldldl", 1, []uint64{8}},
		// drops further apart than the window (one in 22): never four in 64
		{"sparse drops", spread(132, 22, 'x'), 0, nil},
		// a lost camera has its own alarm: its fail-safes are not an overrun
		{"camera lost", "cccccccc", 0, nil},
		// reset while still behind: the next behind part raises it again
		{"reset while behind", "xxxxdrx", 2, []uint64{4, 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, false, func(o *adgpio.Options) { o.InFlight, o.FailSafe = 256, adgpio.FailPass })
			var got []uint64 // appended on the tracker's goroutine, read after Sync
			r.tr.Observe(func(o adgpio.Outcome) {
				if o.Overrun {
					got = append(got, o.Part)
				}
			})
			base := t0
			for i, c := range []byte(tc.parts) {
				if c == 'r' {
					base = base.Add(time.Second) // the parts after it stamped after every part before is acted on
					r.step(base)
					r.tr.ResetAlarm()
					r.tr.Sync()
					c = 'd'
				}
				at := base.Add(time.Duration(i) * ms)
				id := r.tr.Stamp(at)
				switch c {
				case 'd':
					r.tr.Decide(id, false)
				case 'x':
					r.tr.Fail(id, adgpio.CauseDropped)
				case 'c':
					r.tr.Fail(id, adgpio.CauseCameraLost)
				}
			}
			r.step(base.Add(time.Second))
			r.tr.Sync()
			s := r.tr.Stats()
			if s.Overruns != tc.overruns || !slices.Equal(got, tc.at) || r.tr.Alarm() != (tc.overruns > 0) {
				t.Fatalf("overruns %d at parts %v, alarm %v; want %d at %v", s.Overruns, got, r.tr.Alarm(), tc.overruns, tc.at)
			}
		})
	}
}

// A flush with a deadline waits for the parts due before it, not for those due after
// (a stop cannot wait for them); Close then reports those abandoned, saying which
// A stop whose budget ends mid-pulse (field: delay 4 s, pulse 10 s, SIGTERM at
// 2.3 s: a 1 s pulse while the summary said "pulses 1") drives the reject output off
// and counts the pulse as cut short, which the summary prints.
func TestCloseMidPulseCountsItCutShort(t *testing.T) {
	for _, tc := range []struct {
		name  string
		close time.Duration // when Close comes, from t0
		cut   uint64
	}{
		// the pulse runs 100..120 ms: closed at 110 ms, it is cut short
		{"mid-pulse", 110 * ms, 1},
		// closed after it ended: nothing cut
		{"after the pulse", 130 * ms, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, false, nil) // delay 100ms, pulse 20ms
			r.tr.Decide(r.tr.Stamp(t0), true)
			r.step(t0.Add(tc.close))
			if err := r.tr.Close(); err != nil {
				t.Fatal(err)
			}
			s := r.tr.Stats()
			if s.Pulses != 1 || s.CutShort != tc.cut {
				t.Fatalf("stats %+v: want 1 pulse, %d cut short", s, tc.cut)
			}
			if r.reject.Level() != gpio.Low {
				t.Fatal("reject output still on after Close")
			}
		})
	}
}

// were owed a reject pulse, and counts them.
func TestFlushByDeadlineAndCloseAbandons(t *testing.T) {
	r := newRig(t, false, nil) // delay 100ms, pulse 20ms, fail-safe reject
	var got []adgpio.Outcome
	r.tr.Observe(func(o adgpio.Outcome) { got = append(got, o) })
	a := r.tr.Stamp(t0)
	r.tr.Decide(a, true) // due at 100ms: inside the deadline
	far := t0.Add(2 * time.Minute)
	b, c, d := r.tr.Stamp(far), r.tr.Stamp(far), r.tr.Stamp(far)
	r.tr.Decide(b, true)  // owed a pulse
	r.tr.Decide(c, false) // a pass: owed nothing
	_ = d                 // undecided under the reject fail-safe: owed a pulse
	// A minute of real time from now is a minute on the tracker's clock from t0:
	// parts b, c, d are due after it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.tr.Flush(ctx) }()
	r.step(t0.Add(110 * ms)) // a's pulse on, not yet off: the flush waits for it
	select {
	case err := <-done:
		t.Fatalf("flush returned mid-pulse: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	r.step(t0.Add(120 * ms))
	if err := <-done; !errors.Is(err, adgpio.ErrInFlight) || err.Error() != "gpio: parts in flight: 3 due after the deadline" {
		t.Fatalf("flush: %v, want ErrInFlight with 3 left", err)
	}
	if err := r.tr.Close(); err != nil {
		t.Fatal(err)
	}
	want := []adgpio.Outcome{{Part: a, Pulsed: true}, {Part: b, Abandoned: true, Due: true}, {Part: c, Abandoned: true}, {Part: d, Abandoned: true, Due: true}}
	if !slices.Equal(got, want) {
		t.Fatalf("outcomes %+v, want %+v", got, want)
	}
	if s := r.tr.Stats(); s.Abandoned != 3 || s.AbandonedRejects != 2 || s.InFlight != 0 || s.Pulses != 1 {
		t.Fatalf("stats %+v", s)
	}
	if r.reject.Level() != false {
		t.Fatal("reject output left active")
	}
}

// A stop's flush holds a reject pulse that would end after its deadline until the
// deadline, rather than returning at once and cutting it at its start (field: a 10 s
// pulse cut after 1 s with 8 s of the budget left).
func TestFlushHoldsALongPulseToTheDeadline(t *testing.T) {
	r := newRig(t, false, func(o *adgpio.Options) { o.Pulse = time.Hour })
	r.tr.Decide(r.tr.Stamp(t0), true)
	r.step(t0.Add(110 * ms)) // the pulse is on, for an hour
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := r.tr.Flush(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("flush returned %v after %v: want the deadline", err, time.Since(start))
	}
	if r.reject.Level() != gpio.High {
		t.Fatal("the pulse ended before Close")
	}
	r.tr.Close()
	if s := r.tr.Stats(); s.CutShort != 1 || r.reject.Level() != gpio.Low {
		t.Fatalf("after Close: %+v, reject %v", s, r.reject.Level())
	}
}
