package gpio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// Output is one output line; a nil Pin means it is not wired.
type Output struct {
	Name      string
	Pin       OutputPin
	ActiveLow bool
}

// Input is one input line; a nil Pin means it is not wired.
type Input struct {
	Name      string
	Pin       InputPin
	ActiveLow bool
	Pull      gpio.Pull
}

// Options describe one line: its pins, its timing and its fail-safe.
type Options struct {
	Reject, Alarm, Ready, Heartbeat                Output
	Trigger, Encoder, Confirm, Inhibit, AlarmReset Input

	// Delay is from the part's stamp (trigger edge, or frame time without a trigger)
	// to the start of its reject pulse. With DelayCounts > 0 the delay is counted in
	// encoder edges instead, so it follows the belt's speed.
	Delay       time.Duration
	DelayCounts int64
	Pulse       time.Duration
	// Debounce: trigger edges closer than this to the last accepted one are bounce.
	Debounce time.Duration
	// ConfirmWindow: a reject pulse must be seen by the confirm input within this.
	ConfirmWindow   time.Duration
	HeartbeatPeriod time.Duration
	// InFlight bounds the parts between camera and ejector (the tracking FIFO).
	InFlight int
	// Spin: on the real clock the loop wakes this much before an edge is due and
	// spins to it, because Go's timers fire up to a millisecond late; 0: no spin.
	Spin     time.Duration
	FailSafe FailSafe
	Clock    Clock // nil: Real
	Log      *slog.Logger
}

// Part is a part stamped by the trigger input, waiting for its frame.
type Part struct {
	ID uint64
	At time.Time
}

// Outcome is what the reject output did for one part. The tracker reports one for
// every part it is given (by Stamp or the trigger input): when it acts on the part at
// its reject time or, when the FIFO is full, at once (not tracked, not pulsed).
type Outcome struct {
	Part   uint64
	Pulsed bool // the reject output fired for it, on its decision or on the fail-safe
	// Overrun: this part's fail-safe raised the overrun alarm (CauseOverrun).
	Overrun bool
	// Abandoned: the tracker was closed before the part's reject time (a stop that
	// reached its budget); Due says whether a reject pulse was owed to it then (a
	// reject decision, or no decision under the reject fail-safe).
	Abandoned, Due bool
}

// OverrunWindow and OverrunParts: the alarm is raised (CauseOverrun) when
// OverrunParts of the last OverrunWindow parts acted on fell to the fail-safe because
// the pipeline was behind (their frame dropped at a full queue, or their decision
// late). One such part is a burst the queue could not absorb; four in 64 (over 6 %
// of the parts rejected without inspection) is a line that cannot keep up.
const (
	OverrunWindow = 64
	OverrunParts  = 4
)

// Stats are the tracker's counters.
type Stats struct {
	Edges                                      uint64 // input edges seen, from every input
	Parts, Triggers, Bounces, EncoderCounts    uint64
	Pulses, Passes, Inhibited                  uint64
	LateDecisions, UnknownDecisions            uint64
	Confirmed, Unconfirmed, UnexpectedConfirms uint64
	Alarms, Overflows, OutputErrors            uint64
	// Overruns counts the times the overrun alarm was raised (see OverrunParts).
	Overruns uint64
	// Abandoned: parts still in flight when the tracker was closed, not acted on;
	// AbandonedRejects: those of them owed a reject pulse (Outcome.Due).
	Abandoned, AbandonedRejects uint64
	// CutShort: the reject pulse was on when the tracker was closed, and ended then,
	// before its width (a stop whose budget ended mid-pulse).
	CutShort    uint64
	InputErrors uint64             // failed reads of kernel edge events
	FailSafe    [causeCount]uint64 // by Cause
	InFlight    uint64
	MaxLateness time.Duration // pulse start after its due time, worst seen
}

// FailSafes is the number of parts that fell to the fail-safe, for any cause.
func (s Stats) FailSafes() uint64 {
	var n uint64
	for _, v := range s.FailSafe {
		n += v
	}
	return n
}

type inputKind uint8

const (
	inTrigger inputKind = iota
	inEncoder
	inConfirm
	inInhibit
	inAlarmReset
)

type evKind uint8

const (
	evStamp evKind = iota
	evDecide
	evFail
	evInput
	evReady
	evAlarmReset
	evAlarm
	evSync
	evFlush
	evTiming
	evHealth
)

type event struct {
	kind   evKind
	fs     FailSafe
	delay  time.Duration
	pulse  time.Duration
	input  inputKind
	active bool
	reject bool
	cause  Cause
	id     uint64
	at     time.Time
	reply  chan time.Time
	flush  flusher
}

type part struct {
	id       uint64
	at       time.Time
	dueAt    time.Time
	dueCount int64
	decided  bool
	reject   bool
	cause    Cause
}

// Tracker tags each part at the camera, holds it in a FIFO while it travels, and
// gives its reject pulse at stamp + delay, on the decision that arrived for that part
// (in any order) or, if none came in time, on the fail-safe. One goroutine owns all
// state, so outputs change in a single, ordered place.
type Tracker struct {
	opt    Options
	clock  Clock
	log    *slog.Logger
	events chan event
	parts  chan Part
	stop   chan struct{}
	done   chan struct{}
	wg     sync.WaitGroup

	started   atomic.Bool
	closeOnce sync.Once
	closeErr  error
	nextID    atomic.Uint64
	alarmOn   atomic.Bool
	observer  atomic.Pointer[func(Outcome)]
	stats     struct {
		sync.Mutex
		s Stats
	}

	// Owned by the loop goroutine.
	ring         []part
	head, tail   uint64 // ring positions, not part IDs
	encCount     int64
	rejectOn     bool
	offAt        time.Time
	confirms     []time.Time
	cHead, cTail uint64
	lastTrigger  time.Time
	triggered    bool
	inhibited    bool
	beatOn       bool
	nextBeat     time.Time
	sick         bool // the pipeline is not making progress: no heartbeat, no ready
	readyWanted  bool
	flushers     []flusher
	behind       uint64 // one bit per part acted on, newest lowest: fell to the fail-safe because the pipeline was behind

	delayNs atomic.Int64 // opt.Delay, for Delay() outside the loop
}

// flusher is one Flush waiting; until (zero: none) is its deadline on the tracker's
// clock, past which it does not wait for parts.
type flusher struct {
	reply chan uint64 // the parts left in flight when it returns
	until time.Time
}

// New checks the options and leaves every output inactive; Start runs the line.
func New(opt Options) (*Tracker, error) {
	if opt.Clock == nil {
		opt.Clock = Real
	}
	if opt.Log == nil {
		return nil, fmt.Errorf("%w: no logger", ErrConfig)
	}
	if opt.Reject.Pin == nil {
		return nil, fmt.Errorf("%w: the reject output is not wired", ErrConfig)
	}
	if opt.Pulse <= 0 {
		return nil, fmt.Errorf("%w: pulse width %v must be positive", ErrConfig, opt.Pulse)
	}
	if opt.Delay < 0 || opt.DelayCounts < 0 {
		return nil, fmt.Errorf("%w: negative delay", ErrConfig)
	}
	if opt.DelayCounts > 0 && opt.Encoder.Pin == nil {
		return nil, fmt.Errorf("%w: a delay in encoder counts needs the encoder input", ErrConfig)
	}
	if opt.Confirm.Pin != nil && opt.ConfirmWindow <= 0 {
		return nil, fmt.Errorf("%w: the confirm input needs a positive window", ErrConfig)
	}
	if opt.Heartbeat.Pin != nil && opt.HeartbeatPeriod <= 0 {
		return nil, fmt.Errorf("%w: the heartbeat output needs a positive period", ErrConfig)
	}
	if opt.InFlight < 1 || opt.InFlight > 1<<16 {
		return nil, fmt.Errorf("%w: in-flight parts %d out of range 1..65536", ErrConfig, opt.InFlight)
	}
	t := &Tracker{
		opt: opt, clock: opt.Clock, log: opt.Log,
		events:   make(chan event, 1024),
		parts:    make(chan Part, opt.InFlight),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		ring:     make([]part, opt.InFlight),
		confirms: make([]time.Time, opt.InFlight),
	}
	t.delayNs.Store(int64(opt.Delay))
	// Outputs go inactive before anything else can fail, so a half-started line is safe.
	if err := t.allInactive(); err != nil {
		return nil, err
	}
	for _, in := range t.inputs() {
		if in.in.Pin == nil {
			continue
		}
		edge := gpio.BothEdges
		if in.kind == inEncoder {
			edge = gpio.RisingEdge
			if in.in.ActiveLow {
				edge = gpio.FallingEdge
			}
		}
		if err := in.in.Pin.In(in.in.Pull, edge); err != nil {
			return nil, fmt.Errorf("gpio: input %s: %w", in.in.Name, err)
		}
	}
	if opt.Inhibit.Pin != nil {
		t.inhibited = t.isActive(opt.Inhibit)
	}
	return t, nil
}

type namedInput struct {
	kind inputKind
	in   Input
}

func (t *Tracker) inputs() [5]namedInput {
	o := &t.opt
	return [5]namedInput{{inTrigger, o.Trigger}, {inEncoder, o.Encoder}, {inConfirm, o.Confirm}, {inInhibit, o.Inhibit}, {inAlarmReset, o.AlarmReset}}
}

func (t *Tracker) isActive(in Input) bool { return bool(in.Pin.Read()) != in.ActiveLow }

// Triggered says whether parts are stamped by the trigger input (read Parts) rather
// than one per frame (call Stamp).
func (t *Tracker) Triggered() bool { return t.opt.Trigger.Pin != nil }

// Delay is the reject delay parts stamped now get; ok is false when the delay is
// counted in encoder edges, so that no time can be given.
func (t *Tracker) Delay() (d time.Duration, ok bool) {
	return time.Duration(t.delayNs.Load()), t.opt.DelayCounts == 0
}

// Parts delivers the parts the trigger stamped, in order; capture takes one frame for each.
func (t *Tracker) Parts() <-chan Part { return t.parts }

// Start runs the tracking loop and the input watchers.
func (t *Tracker) Start() {
	if !t.started.CompareAndSwap(false, true) {
		return
	}
	if t.opt.Heartbeat.Pin != nil {
		t.nextBeat = t.clock.Now()
	}
	go t.run()
	for _, in := range t.inputs() {
		if in.in.Pin != nil {
			t.wg.Add(1)
			go t.watch(in.kind, in.in)
		}
	}
}

// Close stops the line and leaves every output inactive, mid-pulse or not; safe
// twice, and after a New whose Start never ran. The parts still in flight are
// reported abandoned (Outcome.Abandoned) and counted: the account of a stop that
// could not wait for them.
func (t *Tracker) Close() error {
	t.closeOnce.Do(func() {
		close(t.stop)
		if t.started.Load() {
			<-t.done
			t.abandon() // the loop has ended: its state is this goroutine's now
			if t.rejectOn {
				left := t.offAt.Sub(t.clock.Now())
				t.bump(func(s *Stats) { s.CutShort++ })
				t.log.Warn("reject pulse cut short: the tracker closed while it was on", "left", left.Round(time.Millisecond), "pulse", t.opt.Pulse)
			}
		}
		for _, in := range t.inputs() {
			if in.in.Pin != nil {
				in.in.Pin.Halt()
			}
		}
		t.wg.Wait()
		t.closeErr = t.allInactive()
	})
	return t.closeErr
}

func (t *Tracker) allInactive() error {
	var first error
	for _, o := range [...]*Output{&t.opt.Reject, &t.opt.Alarm, &t.opt.Ready, &t.opt.Heartbeat} {
		if o.Pin == nil {
			continue
		}
		if err := o.Pin.Out(level(false, o.ActiveLow)); err != nil && first == nil {
			first = fmt.Errorf("gpio: output %s: %w", o.Name, err)
		}
	}
	return first
}

func (t *Tracker) send(ev event) bool {
	select {
	case <-t.stop:
		return false
	default:
	}
	select {
	case t.events <- ev:
		return true
	case <-t.stop:
		return false
	}
}

// Stamp tags a part whose frame was taken at at (free-running camera, no trigger
// input) and returns its ID; its reject is due at at + delay.
func (t *Tracker) Stamp(at time.Time) uint64 {
	id := t.nextID.Add(1)
	if !t.send(event{kind: evStamp, id: id, at: at}) {
		return 0
	}
	return id
}

// Decide gives part id's decision. It may come in any order, up to the part's due time.
func (t *Tracker) Decide(id uint64, reject bool) {
	t.send(event{kind: evDecide, id: id, reject: reject})
}

// Fail says part id cannot be decided (its frame was dropped, inference failed...):
// the fail-safe acts on it at its due time.
func (t *Tracker) Fail(id uint64, cause Cause) {
	t.send(event{kind: evFail, id: id, cause: cause})
}

// SetTiming changes the reject delay and pulse width (a reload): parts already in
// flight keep the time they were given; the width applies to pulses started after.
func (t *Tracker) SetTiming(delay, pulse time.Duration, fs FailSafe) {
	t.send(event{kind: evTiming, delay: delay, pulse: pulse, fs: fs})
}

// SetReady drives the ready output: on while the pipeline is healthy.
func (t *Tracker) SetReady(on bool) { t.send(event{kind: evReady, active: on}) }

// SetHealthy says whether the pipeline is making progress. While it is not, the
// heartbeat stops and ready goes off, so that a PLC watching either sees a hung
// inference even though this process is still alive.
func (t *Tracker) SetHealthy(ok bool) { t.send(event{kind: evHealth, active: ok}) }

// ResetAlarm clears the latched alarm (as the alarm-reset input does).
func (t *Tracker) ResetAlarm() { t.send(event{kind: evAlarmReset}) }

// RaiseAlarm latches the alarm for a fault outside the tracker (cause says which, e.g.
// CauseCameraLost), until ResetAlarm or the alarm-reset input.
func (t *Tracker) RaiseAlarm(cause Cause) { t.send(event{kind: evAlarm, cause: cause}) }

// Alarm says whether the alarm is latched.
func (t *Tracker) Alarm() bool { return t.alarmOn.Load() }

// Observe has f called with every part's Outcome from now on, on the tracker's
// goroutine: f must return quickly and must not call the tracker. nil stops the calls.
func (t *Tracker) Observe(f func(Outcome)) {
	if f == nil {
		t.observer.Store(nil)
		return
	}
	t.observer.Store(&f)
}

func (t *Tracker) report(id uint64, pulsed bool) {
	if f := t.observer.Load(); f != nil {
		(*f)(Outcome{Part: id, Pulsed: pulsed})
	}
}

// Stats returns a copy of the counters.
func (t *Tracker) Stats() Stats {
	t.stats.Lock()
	defer t.stats.Unlock()
	return t.stats.s
}

func (t *Tracker) bump(f func(*Stats)) {
	t.stats.Lock()
	f(&t.stats.s)
	t.stats.Unlock()
}

// Sync waits until everything sent before it has been handled and everything due
// by the clock's present time has been done, and returns when the tracker will act
// next by the clock (zero: nothing scheduled). Tests step a fake clock with it.
func (t *Tracker) Sync() time.Time {
	reply := make(chan time.Time, 1)
	if !t.send(event{kind: evSync, reply: reply}) {
		return time.Time{}
	}
	select {
	case r := <-reply:
		return r
	case <-t.done:
		return time.Time{}
	}
}

// ErrInFlight: Flush returned with parts in flight, due after its deadline.
var ErrInFlight = errors.New("gpio: parts in flight")

// Flush waits until every part in flight has been acted on and the reject output
// is off again: the end of a run. With a deadline on ctx it does not wait for what
// cannot come before it: once the only parts left are due after the deadline and no
// pulse is on, it returns at once with ErrInFlight saying how many are left, which
// Close then abandons. A pulse on is waited for up to the deadline (then ctx's error),
// and Close cuts what is left of it (Stats.CutShort).
func (t *Tracker) Flush(ctx context.Context) error {
	reply := make(chan uint64, 1)
	var until time.Time
	if dl, ok := ctx.Deadline(); ok {
		until = t.clock.Now().Add(time.Until(dl)) // the deadline on the tracker's clock
	}
	if !t.send(event{kind: evFlush, flush: flusher{reply, until}}) {
		return ErrClosed
	}
	select {
	case n := <-reply:
		if n > 0 {
			return fmt.Errorf("%w: %d due after the deadline", ErrInFlight, n)
		}
		return nil
	case <-t.done:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("gpio: flush: %w", ctx.Err())
	}
}

func (t *Tracker) run() {
	defer close(t.done)
	timer := t.clock.NewTimer()
	defer timer.Stop()
	spin := t.opt.Spin
	if t.clock != Real {
		spin = 0
	}
	for {
		now := t.clock.Now()
		t.process(now)
		next, ok := t.nextWake()
		switch {
		case !ok:
			timer.Stop()
		case next.Sub(now) <= spin:
			// Close to an edge: spin to it, leaving only for a waiting event. Gosched
			// lets this P run its timers and other goroutines meanwhile.
			for len(t.events) == 0 && time.Now().Before(next) {
				runtime.Gosched()
			}
			if len(t.events) == 0 {
				continue
			}
			timer.Stop()
		default:
			timer.Reset(next.Sub(now) - spin)
		}
		select {
		case <-t.stop:
			return
		case <-timer.C():
		case ev := <-t.events:
			t.handle(ev)
		}
	}
}

func (t *Tracker) handle(ev event) {
	switch ev.kind {
	case evStamp:
		t.push(ev.id, ev.at)
	case evDecide, evFail:
		t.settle(ev)
	case evInput:
		t.onInput(ev)
	case evReady:
		t.readyWanted = ev.active
		t.set(&t.opt.Ready, ev.active && !t.sick)
	case evHealth:
		if t.sick == !ev.active {
			break
		}
		t.sick = !ev.active
		t.set(&t.opt.Ready, t.readyWanted && !t.sick)
		if t.sick {
			t.beatOn = false
			t.set(&t.opt.Heartbeat, false)
			t.log.Error("pipeline not making progress: heartbeat stopped, ready off")
		} else {
			t.nextBeat = t.clock.Now()
			t.log.Info("pipeline moving again: heartbeat and ready restored")
		}
	case evAlarmReset:
		t.clearAlarm()
	case evAlarm:
		t.raiseAlarm(ev.cause.String(), 0)
	case evSync:
		t.process(t.clock.Now())
		next, _ := t.nextWake()
		ev.reply <- next
	case evFlush:
		t.flushers = append(t.flushers, ev.flush)
		t.process(t.clock.Now())
	case evTiming:
		if ev.delay >= 0 && ev.pulse > 0 {
			t.opt.Delay, t.opt.Pulse, t.opt.FailSafe = ev.delay, ev.pulse, ev.fs
			t.delayNs.Store(int64(ev.delay))
		}
	}
}

func (t *Tracker) push(id uint64, at time.Time) {
	if t.tail-t.head == uint64(len(t.ring)) {
		t.bump(func(s *Stats) { s.Overflows++ })
		t.raiseAlarm("tracking FIFO full: part not tracked", id)
		t.report(id, false)
		return
	}
	t.ring[t.tail%uint64(len(t.ring))] = part{
		id: id, at: at, dueAt: at.Add(t.opt.Delay), dueCount: t.encCount + t.opt.DelayCounts,
	}
	t.tail++
	t.bump(func(s *Stats) { s.Parts++; s.InFlight = t.tail - t.head })
}

func (t *Tracker) find(id uint64) *part {
	for i := t.head; i != t.tail; i++ {
		if p := &t.ring[i%uint64(len(t.ring))]; p.id == id {
			return p
		}
	}
	return nil
}

func (t *Tracker) settle(ev event) {
	p := t.find(ev.id)
	if p == nil {
		// Either its due time has passed (the fail-safe already acted) or it was never tracked.
		if t.head != t.tail && ev.id < t.ring[t.head%uint64(len(t.ring))].id || t.head == t.tail && ev.id <= t.nextID.Load() {
			t.bump(func(s *Stats) { s.LateDecisions++ })
			t.log.Warn("decision arrived after the part's reject time: fail-safe already applied", "part", ev.id)
		} else {
			t.bump(func(s *Stats) { s.UnknownDecisions++ })
			t.log.Warn("decision for a part that is not tracked", "part", ev.id)
		}
		return
	}
	if p.decided {
		t.bump(func(s *Stats) { s.UnknownDecisions++ })
		t.log.Warn("part decided twice: keeping the first", "part", ev.id)
		return
	}
	if ev.kind == evFail {
		p.cause = ev.cause
		return
	}
	p.decided, p.reject = true, ev.reject
}

func (t *Tracker) onInput(ev event) {
	t.bump(func(s *Stats) { s.Edges++ })
	switch ev.input {
	case inTrigger:
		if !ev.active {
			return
		}
		if t.triggered && ev.at.Sub(t.lastTrigger) < t.opt.Debounce {
			t.bump(func(s *Stats) { s.Bounces++ })
			return
		}
		t.triggered, t.lastTrigger = true, ev.at
		id := t.nextID.Add(1)
		t.bump(func(s *Stats) { s.Triggers++ })
		t.push(id, ev.at)
		select {
		case t.parts <- Part{ID: id, At: ev.at}:
		default:
			// Capture is not taking parts: the part cannot get a frame.
			if p := t.find(id); p != nil {
				p.cause = CauseNoFrame
			}
		}
	case inEncoder:
		t.encCount++
		t.bump(func(s *Stats) { s.EncoderCounts++ })
	case inConfirm:
		if !ev.active {
			return
		}
		if t.cHead == t.cTail {
			t.bump(func(s *Stats) { s.UnexpectedConfirms++ })
			t.log.Warn("reject confirmation with no reject pending")
			return
		}
		t.cHead++
		t.bump(func(s *Stats) { s.Confirmed++ })
	case inInhibit:
		t.inhibited = ev.active
		t.log.Info("reject inhibit", "active", ev.active)
	case inAlarmReset:
		if ev.active {
			t.clearAlarm()
		}
	}
}

// process does everything due by now: reject pulses on and off, fail-safes,
// confirmation timeouts and the heartbeat.
func (t *Tracker) process(now time.Time) {
	n := uint64(len(t.ring))
	for t.head != t.tail {
		p := &t.ring[t.head%n]
		if t.opt.DelayCounts > 0 {
			if t.encCount < p.dueCount {
				break
			}
		} else if now.Before(p.dueAt) {
			break
		}
		t.act(p, now)
		t.head++
	}
	if t.rejectOn && !now.Before(t.offAt) {
		t.rejectOn = false
		t.set(&t.opt.Reject, false)
	}
	for t.cHead != t.cTail && !now.Before(t.confirms[t.cHead%n]) {
		t.cHead++
		t.bump(func(s *Stats) { s.Unconfirmed++ })
		t.raiseAlarm("reject not confirmed within the window", 0)
	}
	if t.opt.Heartbeat.Pin != nil && !t.sick && !now.Before(t.nextBeat) {
		t.beatOn = !t.beatOn
		t.set(&t.opt.Heartbeat, t.beatOn)
		t.nextBeat = t.nextBeat.Add(t.opt.HeartbeatPeriod)
		if t.nextBeat.Before(now) {
			t.nextBeat = now.Add(t.opt.HeartbeatPeriod)
		}
	}
	t.bump(func(s *Stats) { s.InFlight = t.tail - t.head })
	if len(t.flushers) > 0 {
		kept := t.flushers[:0]
		for _, f := range t.flushers {
			if t.flushed(f.until) {
				f.reply <- t.tail - t.head
			} else {
				kept = append(kept, f)
			}
		}
		t.flushers = kept
	}
}

// flushed says whether a flush with deadline until (zero: none) has nothing more to
// wait for: no part in flight and the pulse over, or only what comes after until.
// Parts are acted on in FIFO order, so when the oldest is due after until none
// before it can come.
func (t *Tracker) flushed(until time.Time) bool {
	// A pulse on is held to its end, or to the deadline (the caller's wait ends
	// there, and Close cuts it then, counted): the actuator gets what the budget allows.
	pulseDone := !t.rejectOn
	if t.head == t.tail {
		return pulseDone
	}
	if until.IsZero() || t.opt.DelayCounts > 0 {
		return false
	}
	return pulseDone && t.ring[t.head%uint64(len(t.ring))].dueAt.After(until)
}

// abandon reports every part still in flight as not acted on (Close, after the loop).
func (t *Tracker) abandon() {
	n := uint64(len(t.ring))
	for ; t.head != t.tail; t.head++ {
		p := &t.ring[t.head%n]
		due := p.reject || !p.decided && t.opt.FailSafe == FailReject
		t.bump(func(s *Stats) {
			s.Abandoned++
			if due {
				s.AbandonedRejects++
			}
			s.InFlight = t.tail - t.head - 1
		})
		if f := t.observer.Load(); f != nil {
			(*f)(Outcome{Part: p.id, Abandoned: true, Due: due})
		}
	}
}

func (t *Tracker) act(p *part, now time.Time) {
	pulsed := false
	switch {
	case p.decided && p.reject:
		pulsed = t.fire(p, now)
	case p.decided:
		t.bump(func(s *Stats) { s.Passes++ })
	default:
		cause := p.cause
		if cause == CauseNone {
			cause = CauseLate
		}
		if cause == CauseDropped || cause == CauseLate {
			t.behind |= 1
		}
		t.bump(func(s *Stats) { s.FailSafe[cause]++ })
		t.log.Warn("part fell to the fail-safe", "part", p.id, "cause", cause.String(), "fail_safe", t.opt.FailSafe.String())
		switch t.opt.FailSafe {
		case FailReject:
			pulsed = t.fire(p, now)
		case FailPass:
			t.bump(func(s *Stats) { s.Passes++ })
		case FailAlarm:
			t.raiseAlarm("part not decided: "+cause.String(), p.id)
		}
	}
	overrun := false
	if t.behind&1 != 0 && bits.OnesCount64(t.behind) >= OverrunParts && !t.alarmOn.Load() {
		// Raised again on the next such part if reset while the line is still behind.
		overrun = true
		t.bump(func(s *Stats) { s.Overruns++ })
		t.raiseAlarm(fmt.Sprintf("%s: %d of the last %d parts fell to the fail-safe because inference was behind (frame dropped or decision late); adtrd bench measures this machine",
			CauseOverrun, bits.OnesCount64(t.behind), OverrunWindow), p.id)
	}
	t.behind <<= 1 // the next part's bit; OverrunWindow bits are kept
	if f := t.observer.Load(); f != nil {
		(*f)(Outcome{Part: p.id, Pulsed: pulsed, Overrun: overrun})
	}
}

// fire starts part p's reject pulse and says whether it did (not when inhibited).
func (t *Tracker) fire(p *part, now time.Time) bool {
	if t.inhibited {
		t.bump(func(s *Stats) { s.Inhibited++ })
		t.log.Info("reject inhibited", "part", p.id)
		return false
	}
	if !t.rejectOn {
		t.rejectOn = true
		t.set(&t.opt.Reject, true)
	}
	// Overlapping pulses merge: the output stays on until the later one ends.
	if end := now.Add(t.opt.Pulse); end.After(t.offAt) {
		t.offAt = end
	}
	late := time.Duration(0)
	if t.opt.DelayCounts == 0 {
		late = now.Sub(p.dueAt)
	}
	t.bump(func(s *Stats) {
		s.Pulses++
		if late > s.MaxLateness {
			s.MaxLateness = late
		}
	})
	if t.opt.Confirm.Pin != nil {
		n := uint64(len(t.confirms))
		if t.cTail-t.cHead == n {
			t.cHead++ // the oldest is long overdue anyway
		}
		t.confirms[t.cTail%n] = now.Add(t.opt.ConfirmWindow)
		t.cTail++
	}
	return true
}

func (t *Tracker) nextWake() (time.Time, bool) {
	var next time.Time
	ok := false
	consider := func(at time.Time) {
		if !ok || at.Before(next) {
			next, ok = at, true
		}
	}
	if t.head != t.tail && t.opt.DelayCounts == 0 {
		consider(t.ring[t.head%uint64(len(t.ring))].dueAt)
	}
	if t.rejectOn {
		consider(t.offAt)
	}
	if t.cHead != t.cTail {
		consider(t.confirms[t.cHead%uint64(len(t.confirms))])
	}
	if t.opt.Heartbeat.Pin != nil && !t.sick {
		consider(t.nextBeat)
	}
	return next, ok
}

func (t *Tracker) raiseAlarm(why string, id uint64) {
	t.bump(func(s *Stats) { s.Alarms++ })
	t.log.Error("alarm", "why", why, "part", id)
	if !t.alarmOn.Load() {
		t.alarmOn.Store(true)
		t.set(&t.opt.Alarm, true)
	}
}

func (t *Tracker) clearAlarm() {
	if t.alarmOn.Load() {
		t.alarmOn.Store(false)
		t.set(&t.opt.Alarm, false)
		t.log.Info("alarm reset")
	}
}

func (t *Tracker) set(o *Output, active bool) {
	if o.Pin == nil {
		return
	}
	if err := o.Pin.Out(level(active, o.ActiveLow)); err != nil {
		t.bump(func(s *Stats) { s.OutputErrors++ })
		t.log.Error("gpio output", "pin", o.Name, "active", active, "err", err)
	}
}

// watch forwards one input's edges: with their kernel timestamps and directions where
// the pin is an EdgeReader, else stamped on arrival with the level read then. It waits
// at most poll at a time so that Close can stop it on any driver.
func (t *Tracker) watch(kind inputKind, in Input) {
	defer t.wg.Done()
	const poll = 100 * time.Millisecond
	if er, ok := in.Pin.(EdgeReader); ok {
		if t.watchEvents(kind, in, er, poll) {
			return
		}
		t.log.Warn("gpio input: no kernel edge events; stamping edges on arrival", "input", in.Name)
	}
	for {
		select {
		case <-t.stop:
			return
		default:
		}
		start := time.Now()
		if !in.Pin.WaitForEdge(poll) {
			// A driver without edge support returns at once: do not spin on it.
			if d := poll - time.Since(start); d > poll/2 {
				select {
				case <-t.stop:
					return
				case <-time.After(d):
				}
			}
			continue
		}
		at := t.clock.Now()
		active := true
		if kind != inEncoder {
			active = t.isActive(in)
		}
		if !t.send(event{kind: evInput, input: kind, active: active, at: at}) {
			return
		}
	}
}

// watchEvents forwards an EdgeReader's edges until the tracker stops (true), or
// returns false at once if the pin has no edge events after all.
func (t *Tracker) watchEvents(kind inputKind, in Input, er EdgeReader, poll time.Duration) bool {
	var buf [16]EdgeEvent
	for {
		select {
		case <-t.stop:
			return true
		default:
		}
		n, err := er.ReadEdges(poll, buf[:])
		if errors.Is(err, ErrNoEdges) {
			return false
		}
		if err != nil {
			t.bump(func(s *Stats) { s.InputErrors++ })
			t.log.Error("gpio input", "input", in.Name, "err", err)
			select {
			case <-t.stop:
				return true
			case <-time.After(poll):
			}
			continue
		}
		for _, e := range buf[:n] {
			active := e.Rising != in.ActiveLow
			if kind == inEncoder && !active {
				continue // the encoder counts its active edges only
			}
			if !t.send(event{kind: evInput, input: kind, active: active || kind == inEncoder, at: e.At}) {
				return true
			}
		}
	}
}
