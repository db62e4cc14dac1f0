// Package linetest has the fakes the gpio tests run on: a manual clock, and a
// recording wrapper for periph's gpiotest pins (which keep no history of edges).
// There is no GPIO chip on the build machine; these stand in for one.
package linetest

import (
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	adgpio "github.com/adtrd/adtrd/gpio"
)

// Clock is a manual clock: time moves only when the test says so.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer
}

// NewClock starts a clock at start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t (never backwards) and fires the timers now due.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
	for _, tm := range c.timers {
		tm.fireIfDue(c.now)
	}
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

func (c *Clock) NewTimer() adgpio.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{c: c, ch: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	return t
}

type timer struct {
	c     *Clock
	ch    chan time.Time
	at    time.Time
	armed bool
}

func (t *timer) C() <-chan time.Time { return t.ch }

func (t *timer) Reset(d time.Duration) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.drain()
	t.at, t.armed = t.c.now.Add(d), true
	t.fireIfDue(t.c.now)
}

func (t *timer) Stop() {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.armed = false
	t.drain()
}

func (t *timer) drain() {
	select {
	case <-t.ch:
	default:
	}
}

func (t *timer) fireIfDue(now time.Time) {
	if t.armed && !now.Before(t.at) {
		t.armed = false
		select {
		case t.ch <- now:
		default:
		}
	}
}

// Step runs tr on clk up to until, stopping at every time the tracker asked to wake,
// so each edge happens exactly when it was scheduled.
func Step(clk *Clock, tr *adgpio.Tracker, until time.Time) {
	for {
		next := tr.Sync()
		if next.IsZero() || next.After(until) {
			break
		}
		clk.Set(next)
	}
	clk.Set(until)
	tr.Sync()
}

// Edge is one recorded output level change.
type Edge struct {
	At    time.Time
	Level gpio.Level
}

// Recorder wraps a gpiotest pin and records every level change with the clock's time.
type Recorder struct {
	*gpiotest.Pin
	clock adgpio.Clock
	mu    sync.Mutex
	edges []Edge
}

// NewRecorder makes a recorded output pin named name.
func NewRecorder(name string, clock adgpio.Clock) *Recorder {
	return &Recorder{Pin: &gpiotest.Pin{N: name}, clock: clock}
}

// Out sets the gpiotest pin and records the change.
func (r *Recorder) Out(l gpio.Level) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.edges); n > 0 && r.edges[n-1].Level == l {
		return r.Pin.Out(l)
	}
	r.edges = append(r.edges, Edge{r.clock.Now(), l})
	return r.Pin.Out(l)
}

// Edges returns every recorded change, the first being the initial level.
func (r *Recorder) Edges() []Edge {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Edge(nil), r.edges...)
}

// Level is the pin's present level.
func (r *Recorder) Level() gpio.Level {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.edges) == 0 {
		return gpio.Low
	}
	return r.edges[len(r.edges)-1].Level
}

// Pulse is one active period.
type Pulse struct{ On, Off time.Time }

// Pulses reads the active periods from the edges (Off is zero while still active).
func (r *Recorder) Pulses(activeLow bool) []Pulse {
	var out []Pulse
	for _, e := range r.Edges() {
		active := bool(e.Level) != activeLow
		switch {
		case active && (len(out) == 0 || !out[len(out)-1].Off.IsZero()):
			out = append(out, Pulse{On: e.At})
		case !active && len(out) > 0 && out[len(out)-1].Off.IsZero():
			out[len(out)-1].Off = e.At
		}
	}
	return out
}

// NewInput makes a gpiotest input pin whose edges the test sends with Edge.
func NewInput(name string) *gpiotest.Pin {
	return &gpiotest.Pin{N: name, EdgesChan: make(chan gpio.Level)}
}

// EdgeInput is an input whose edges arrive as the GPIO character device's event queue
// delivers them (an adgpio.EdgeReader): each with its direction and its own time,
// queued by the test with Send. With NoEvents set it reports adgpio.ErrNoEdges, and
// the tracker falls back to the embedded gpiotest.Pin's WaitForEdge.
type EdgeInput struct {
	*gpiotest.Pin
	NoEvents bool
	events   chan adgpio.EdgeEvent
}

// NewEdgeInput makes an EdgeInput with room for 64 queued edges.
func NewEdgeInput(name string) *EdgeInput {
	return &EdgeInput{Pin: NewInput(name), events: make(chan adgpio.EdgeEvent, 64)}
}

// Send queues edges, as the kernel does while nobody reads.
func (p *EdgeInput) Send(e ...adgpio.EdgeEvent) {
	for _, v := range e {
		p.events <- v
	}
}

// ReadEdges waits up to timeout for an edge, then takes every queued one that fits.
func (p *EdgeInput) ReadEdges(timeout time.Duration, out []adgpio.EdgeEvent) (int, error) {
	if p.NoEvents {
		return 0, adgpio.ErrNoEdges
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case out[0] = <-p.events:
	case <-t.C:
		return 0, nil
	}
	n := 1
	for n < len(out) {
		select {
		case out[n] = <-p.events:
			n++
		default:
			return n, nil
		}
	}
	return n, nil
}
