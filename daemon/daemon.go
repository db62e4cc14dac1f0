// Package daemon is adtrd's pipeline: capture -> infer -> score -> decide -> reject,
// with a bounded queue that drops at the capture end, and one decision record per frame.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/gpio"
)

// Source produces frames; Paced sources (cameras) do not wait for a full queue (see
// capture for what becomes of their frames), unpaced ones (replay as fast as
// possible) wait for the pipeline. Next returns a
// frame (its Err set for one bad frame), capture.ErrLost while the camera is lost
// and the source reconnects (the pipeline keeps calling Next, and parts meanwhile
// take the fail-safe with cause "camera lost"), or any other error to end the stream
// (capture.ErrEOF at the end of a replay). The pipeline releases every frame it gets.
type Source interface {
	Next(ctx context.Context) (capture.Frame, error)
	Paced() bool
	Close() error
}

// Tracker follows each part to the ejector (gpio.Tracker): parts are stamped by its
// trigger input, or one per frame; each gets a decision, or fails to the fail-safe.
// None of its methods may block for long.
type Tracker interface {
	Triggered() bool
	Parts() <-chan gpio.Part
	Stamp(at time.Time) uint64
	// Delay is the reject delay a part stamped now gets (ok false: counted in encoder
	// edges, no time).
	Delay() (d time.Duration, ok bool)
	Decide(id uint64, reject bool)
	Fail(id uint64, cause gpio.Cause)
	SetReady(on bool)
	// RaiseAlarm latches the alarm output for a fault outside the tracker.
	RaiseAlarm(cause gpio.Cause)
	// Observe reports what the reject output did for each part (see gpio.Outcome).
	Observe(f func(gpio.Outcome))
}

// Settings are the pipeline's fixed knobs (a change needs a restart); what a reload
// can change lives in the Generation.
type Settings struct {
	Queue  int
	Events *events.Bus // where the pipeline publishes; nil: a bus of its own (Pipeline.Events)
	// FrameBefore and FrameAfter: with a trigger input and a paced source (a camera),
	// a frame captured within [trigger-FrameBefore, trigger+FrameAfter] is that part's
	// (input.trigger.frame_before/after). Both 0: 20ms and 100ms.
	FrameBefore, FrameAfter time.Duration
	// InFlight bounds the parts waiting for their frame (tracking.in_flight); 0: 64.
	InFlight int
	// Drain, called once when the run is cancelled with the running generation's
	// config, is how long after that the frames of triggered parts still queued may be
	// decided (the rest take the fail-safe, cause "stopped"); nil: none is. Frames
	// without a trigger are no parts until decided, so a stop leaves those in the
	// queue undecided. It runs on the pipeline's goroutine, between two frames: it
	// must not wait for anything a reload holds while it swaps generations.
	Drain func(cur config.Config) time.Duration
}

// Summary is the end-of-run account. Rejects counts reject decisions (by score or by
// the fail-safe); Unpulsed those of them the reject output did not act on (the part
// was not tracked, its decision came after its reject time, or rejects were
// inhibited); Line.Pulses is what the reject output did. Escapes and FalseRejects are
// counted only when frames are labelled (capture.replay.labels), from what the output
// did: a labelled defect that was not pulsed is an escape, a labelled good part that
// was pulsed a false reject.
type Summary struct {
	Frames, Rejects, Unpulsed, Dropped, BadFrames, InferErrors, CameraErrors uint64
	Unmatched                                                                uint64 // frames in no part's window (triggered camera)
	Skipped, Undecided, SourceDropped                                        uint64 // see Stats
	Labelled                                                                 bool
	Escapes, FalseRejects                                                    Tally
	// NotEjected names the parts owed a reject pulse that a stop left in flight
	// (gpio.Outcome.Due): a frame's name, or "part N" for a part never decided.
	NotEjected Tally
	Line       gpio.Stats // the output side, filled by the caller
}

// Tally counts frames and keeps the first MaxNames distinct names among them, so a
// summary stays small however long a run (or --loop) lasts.
type Tally struct {
	N     uint64
	Names []string
}

// MaxNames is how many distinct frame names a Tally keeps.
const MaxNames = 10

// Add counts one frame named name.
func (t *Tally) Add(name string) {
	t.N++
	if len(t.Names) < MaxNames && !slices.Contains(t.Names, name) {
		t.Names = append(t.Names, name)
	}
}

// List is the names, with how many more frames there were ("" when none).
func (t Tally) List() string {
	if t.N == 0 {
		return ""
	}
	s := strings.Join(t.Names, " ")
	if more := t.N - uint64(len(t.Names)); more > 0 {
		s += fmt.Sprintf(" (%d frames in all)", t.N)
	}
	return s
}

func (s Summary) String() string {
	labels := ""
	if s.Labelled {
		labels = fmt.Sprintf(", escapes %d, false rejects %d", s.Escapes.N, s.FalseRejects.N)
	}
	unmatched := ""
	if s.Unmatched > 0 {
		unmatched = fmt.Sprintf(", frames matching no part %d", s.Unmatched)
	}
	if s.Skipped > 0 {
		unmatched += fmt.Sprintf(", skipped %d", s.Skipped)
	}
	if s.Undecided > 0 {
		unmatched += fmt.Sprintf(", left in the queue at the stop %d", s.Undecided)
	}
	if s.SourceDropped > 0 {
		unmatched += fmt.Sprintf(", dropped by the camera %d", s.SourceDropped)
	}
	stop := ""
	if s.Line.Abandoned > 0 {
		stop = fmt.Sprintf(", in flight at the stop %d (owed a reject pulse %d)", s.Line.Abandoned, s.Line.AbandonedRejects)
	}
	if s.Line.CutShort > 0 {
		stop += fmt.Sprintf(", reject pulses cut short at the stop %d", s.Line.CutShort)
	}
	return fmt.Sprintf("frames %d, rejects %d, rejects not pulsed %d%s, dropped %d%s, bad frames %d, inference errors %d, camera errors %d; "+
		"line: pulses %d, fail-safes %d, late decisions %d, untracked decisions %d, alarms %d%s",
		s.Frames, s.Rejects, s.Unpulsed, labels, s.Dropped, unmatched, s.BadFrames, s.InferErrors, s.CameraErrors,
		s.Line.Pulses, s.Line.FailSafes(), s.Line.LateDecisions, s.Line.UnknownDecisions, s.Line.Alarms, stop)
}

// KeepUp says, in one line, how the line fell behind its frames or parts during the
// run ("" when it never did): the parts that fell to the fail-safe because inference
// was behind, the overrun alarm, the frames skipped without a part. `adtrd bench`
// measures what the machine decides per second, which is what to compare with the
// camera's or the line's rate.
func (s Summary) KeepUp() string {
	var says []string
	if n := s.Line.FailSafe[gpio.CauseDropped] + s.Line.FailSafe[gpio.CauseLate]; n > 0 {
		says = append(says, fmt.Sprintf("%d parts fell to the fail-safe because inference was behind (frame dropped %d, decision late %d)",
			n, s.Line.FailSafe[gpio.CauseDropped], s.Line.FailSafe[gpio.CauseLate]))
	}
	if s.Line.Overruns > 0 {
		says = append(says, fmt.Sprintf("the overrun alarm was raised %d times", s.Line.Overruns))
	}
	if s.Skipped > 0 {
		says = append(says, fmt.Sprintf("%d of %d frames were skipped, never inspected: the source delivers them faster than they are decided",
			s.Skipped, s.Skipped+s.Frames+s.Undecided))
	}
	if s.SourceDropped > 0 {
		says = append(says, fmt.Sprintf("%d frames were dropped by the camera source before the queue (every frame buffer held)", s.SourceDropped))
	}
	if len(says) == 0 {
		return ""
	}
	return "the line could not keep up: " + strings.Join(says, "; ") + "; `adtrd bench -c CONFIG` measures the frames a second this machine decides"
}

// Pipeline wires a source, a generation (engine, scorer, threshold) and a tracker.
type Pipeline struct {
	set   Settings
	gen   *Generation // owned by the Run goroutine while it runs
	swaps chan swap
	src   Source
	line  Tracker
	log   *slog.Logger
	// frameAttrs is the per-frame log record's attributes (12, and an error),
	// rewritten by the inference goroutine for each frame (record).
	frameAttrs [13]slog.Attr
	Stats      events.Stats
	events     *events.Bus

	mu      sync.Mutex
	ready   bool
	running chan struct{} // open while Run runs
	first   chan struct{} // closed when the first frame is decided
	jobs    chan job
	ran     atomic.Bool   // Run has been called: a pipeline runs once
	busy    atomic.Bool   // a frame is being inferred and scored
	taken   atomic.Uint64 // frames handle is done with: decided, or skipped as too old
	last    atomic.Uint64 // the last score's float64 bits
	// lostSince is when the camera was lost (Unix ns), 0 while it delivers.
	lostSince atomic.Int64

	outcomes outcomes
	// costs are the last len(costs) frames' inference and scoring times (a ring at
	// costN), the Run goroutine's: the last is what deciding the next frame is
	// expected to take, their spread the margin an untriggered frame must leave.
	costs [16]time.Duration
	costN int
	// skipping is set once the first frame was skipped (the warning is logged once).
	skipping atomic.Bool
	srcDrops droppingSource // nil: the source drops nothing itself
}

// noteCost adds one decided frame's inference and scoring time.
func (p *Pipeline) noteCost(c time.Duration) {
	p.costs[p.costN%len(p.costs)] = c
	p.costN++
}

// lastCost is the last decided frame's inference and scoring time; 0 before the first.
func (p *Pipeline) lastCost() time.Duration {
	if p.costN == 0 {
		return 0
	}
	return p.costs[(p.costN-1)%len(p.costs)]
}

// costRange is the median and the most of the last (up to 16) frames' inference and
// scoring times; both 0 before the first.
func (p *Pipeline) costRange() (typical, hi time.Duration) {
	var c [len(p.costs)]time.Duration
	n := min(p.costN, len(p.costs))
	copy(c[:], p.costs[:n])
	for i := 1; i < n; i++ { // insertion sort: 16 values, no allocation
		for j := i; j > 0 && c[j] < c[j-1]; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
	if n == 0 {
		return 0, 0
	}
	return c[n/2], c[n-1]
}

// skipWhy is why a frame was skipped.
type skipWhy int

const (
	skipQueueFull skipWhy = iota // it found the queue full
	skipBehind                   // newer frames were waiting and the pipeline was behind
	skipTooOld                   // its decision could not reach the ejector in time
)

func (w skipWhy) String() string {
	switch w {
	case skipQueueFull:
		return "queue full"
	case skipBehind:
		return "behind: newer frames were waiting"
	case skipTooOld:
		return "too old to be decided before its reject time"
	}
	return fmt.Sprintf("skipWhy(%d)", int(w))
}

// skip gives up a frame that was never a part (an untriggered camera's): released,
// counted as skipped, the first one logged as a warning. wait is how long it had
// waited for inference. Without a warning or debug line it allocates nothing.
func (p *Pipeline) skip(f capture.Frame, why skipWhy, wait time.Duration) {
	f.Release()
	p.Stats.Skipped.Add(1)
	lvl := slog.LevelDebug
	if p.skipping.CompareAndSwap(false, true) {
		lvl = slog.LevelWarn
	}
	if p.log.Enabled(context.Background(), lvl) {
		p.log.LogAttrs(context.Background(), lvl, "frame skipped: the source delivers frames faster than inference decides them (no part, not inspected; counted as skipped)",
			slog.Uint64("seq", f.Seq), slog.String("why", why.String()), slog.Duration("queue_wait", wait.Round(time.Microsecond)))
	}
}

// outcomes pairs each part's decision with what the output did for it; it has its own
// lock because the tracker's goroutine reports into it.
type outcomes struct {
	sync.Mutex
	notes             []note // by part ID modulo len
	unpulsed          uint64
	escapes, falseRjs Tally
	notEjected        Tally
}

// note is one part's decision and outcome, which arrive in either order (a part not
// tracked or decided late has its outcome first).
type note struct {
	id             uint64
	name           string
	truth          truth
	reject         bool
	decided, acted bool
	pulsed         bool
}

type truth uint8

const (
	unlabelled truth = iota
	labelledGood
	labelledDefect
)

// noteSlots bounds the parts whose decision and outcome are both awaited: the
// tracking FIFO holds at most 4096 (tracking.in_flight), the queue a few more.
const noteSlots = 8192

type swap struct {
	gen   *Generation
	reply chan *Generation
}

// job is a frame and the part it shows (0: none yet), stamped at at.
type job struct {
	f    capture.Frame
	part uint64
	at   time.Time
}

// New makes a pipeline; it does not take ownership of its parts.
func New(set Settings, gen *Generation, src Source, line Tracker, log *slog.Logger) (*Pipeline, error) {
	if set.Queue < 1 {
		return nil, fmt.Errorf("daemon: queue %d must be at least 1", set.Queue)
	}
	if err := gen.check(); err != nil {
		return nil, err
	}
	bus := set.Events
	if bus == nil {
		bus = events.NewBus()
	}
	p := &Pipeline{set: set, gen: gen, swaps: make(chan swap), src: src, line: line, log: log, events: bus,
		first: make(chan struct{}), jobs: make(chan job, set.Queue)}
	p.outcomes.notes = make([]note, noteSlots)
	p.srcDrops, _ = src.(droppingSource)
	line.Observe(p.outcome)
	return p, nil
}

// droppingSource is a source that drops frames itself, before the queue (a camera
// whose frame buffers are all held): Dropped is how many so far.
type droppingSource interface{ Dropped() uint64 }

// noteSourceDrops copies the source's own drop count into Stats when the counters
// are read (Counters, Summary), not on the frame path.
func (p *Pipeline) noteSourceDrops() {
	if p.srcDrops != nil {
		p.Stats.SourceDropped.Store(p.srcDrops.Dropped())
	}
}

// decided notes part's decision (reject or not) for the frame named name.
func (p *Pipeline) decided(part uint64, name string, reject bool, labels config.Labels) {
	if part == 0 {
		return
	}
	t := unlabelled
	if labels == config.LabelsName {
		switch l := label(name); l {
		case "":
		case "good":
			t = labelledGood
		default:
			t = labelledDefect
		}
	}
	o := &p.outcomes
	o.Lock()
	defer o.Unlock()
	n := &o.notes[part%noteSlots]
	if n.id != part {
		*n = note{id: part}
	}
	n.name, n.truth, n.reject, n.decided = filepath.Base(name), t, reject, true
	o.settle(n)
}

// outcome is the tracker's report (gpio.Tracker.Observe).
func (p *Pipeline) outcome(oc gpio.Outcome) {
	if oc.Overrun {
		// On the tracker's goroutine: Publish never blocks.
		p.events.Publish(events.Event{Kind: events.EventOverrun, Time: time.Now(), Part: oc.Part, Cause: gpio.CauseOverrun.String()})
	}
	o := &p.outcomes
	o.Lock()
	defer o.Unlock()
	n := &o.notes[oc.Part%noteSlots]
	if n.id != oc.Part {
		*n = note{id: oc.Part}
	}
	if oc.Abandoned && oc.Due {
		if n.decided {
			o.notEjected.Add(n.name)
		} else {
			o.notEjected.Add(fmt.Sprintf("part %d", oc.Part))
		}
	}
	n.acted, n.pulsed = true, oc.Pulsed
	if !n.decided && oc.Abandoned {
		*n = note{} // no decision will come: the run has ended
		return
	}
	o.settle(n)
}

// settle counts a part once both its decision and its outcome are in.
func (o *outcomes) settle(n *note) {
	if !n.decided || !n.acted {
		return
	}
	if n.reject && !n.pulsed {
		o.unpulsed++
	}
	switch {
	case n.truth == labelledDefect && !n.pulsed:
		o.escapes.Add(n.name)
	case n.truth == labelledGood && n.pulsed:
		o.falseRjs.Add(n.name)
	}
	*n = note{}
}

// Events is the bus the pipeline publishes decisions, fail-safes and camera state on.
func (p *Pipeline) Events() *events.Bus { return p.events }

// FirstFrame is closed once the first frame has been decided: the daemon is ready.
func (p *Pipeline) FirstFrame() <-chan struct{} { return p.first }

// CameraLost says since when the camera has been lost (zero: it is delivering).
func (p *Pipeline) CameraLost() time.Time {
	if ns := p.lostSince.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// LastScore is the most recent frame's score.
func (p *Pipeline) LastScore() float64 { return math.Float64frombits(p.last.Load()) }

// Progress returns a check for a watchdog: each call says whether the pipeline has
// decided a frame (or skipped one as too old) since the previous call, or is idle by design (no frame in
// inference and none queued: waiting for the camera or the trigger). A hung
// inference is neither, so the check fails and the watchdog stops being fed.
func (p *Pipeline) Progress() func() bool {
	var seen uint64
	return func() bool {
		n := p.taken.Load()
		moved := n != seen
		seen = n
		return moved || (!p.busy.Load() && len(p.jobs) == 0)
	}
}

func (g *Generation) check() error {
	p := g.Scorer.Params()
	if want := p.Size * p.Size * 3; len(g.Engine.Input()) != want {
		return fmt.Errorf("daemon: engine input is %d bytes, the scorer expects %dx%d RGB", len(g.Engine.Input()), p.Size, p.Size)
	}
	return nil
}

// Swap makes g the generation for every frame after the one in progress, and returns
// the previous one, which no frame uses any more: the caller closes it.
func (p *Pipeline) Swap(g *Generation) (*Generation, error) {
	if err := g.check(); err != nil {
		return nil, err
	}
	reply := make(chan *Generation, 1)
	for {
		p.mu.Lock()
		running := p.running
		if running == nil {
			old := p.gen
			p.gen = g
			p.mu.Unlock()
			return old, nil
		}
		p.mu.Unlock()
		select {
		case p.swaps <- swap{g, reply}:
			return <-reply, nil
		case <-running: // Run ended meanwhile: swap directly
		}
	}
}

// Generation is the generation in use (for status; do not close it).
func (p *Pipeline) Generation() *Generation {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gen
}

// Running is what consumers of the pipeline show of the generation in use.
func (p *Pipeline) Running() events.GenInfo {
	g := p.Generation()
	info := events.GenInfo{N: g.N, ModelSHA: g.ModelSHA, Threshold: g.Threshold, ModelPath: g.Config.Model.Path, Engine: g.Config.Model.Engine, Placement: g.Placement}
	if g.Meta != nil {
		info.ModelVersion = g.Meta.ModelVersion
	}
	return info
}

// Counters are the pipeline's Stats, for consumers that see it through an interface.
func (p *Pipeline) Counters() *events.Stats {
	p.noteSourceDrops()
	return &p.Stats
}

// Run processes frames until the source ends or ctx is cancelled. The ready output
// is on from the first decided frame until Run returns.
func (p *Pipeline) Run(ctx context.Context) (Summary, error) {
	if !p.ran.CompareAndSwap(false, true) {
		return Summary{}, errors.New("daemon: a pipeline runs once; make a new one")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := p.jobs
	capErr := make(chan error, 1)
	p.mu.Lock()
	running := make(chan struct{})
	p.running = running
	p.mu.Unlock()
	go func() { capErr <- p.capture(ctx, jobs) }()
	stopping := false
	var drainBy time.Time
loop:
	for {
		select {
		case j, ok := <-jobs:
			if !ok {
				break loop
			}
			if !stopping && ctx.Err() != nil {
				// The stop: what is still queued must fit the stop's budget (Drain).
				stopping, drainBy = true, time.Now()
				if p.set.Drain != nil {
					drainBy = drainBy.Add(max(p.set.Drain(p.gen.Config), 0))
				}
			}
			if stopping && !p.worthDeciding(j, drainBy) {
				continue
			}
			p.handle(j)
			if !p.ready {
				p.ready = true
				p.line.SetReady(true)
				close(p.first)
			}
		case s := <-p.swaps:
			// Between two frames: the previous generation has no frame in flight.
			p.mu.Lock()
			old := p.gen
			p.gen = s.gen
			p.mu.Unlock()
			s.reply <- old
		}
	}
	p.mu.Lock()
	close(running)
	p.running = nil
	p.mu.Unlock()
	if p.ready {
		p.line.SetReady(false)
	}
	err := <-capErr
	if errors.Is(err, capture.ErrEOF) || errors.Is(err, context.Canceled) {
		err = nil
	}
	return p.Summary(), err
}

// worthDeciding says whether a frame still queued at the stop is decided (true) or
// given up (false; released here): an untriggered frame is no part yet and is just
// released; a triggered part's frame is decided until drainBy if its decision can
// still come before the part's reject time, and otherwise falls to the fail-safe
// (cause "stopped"), unless that time has passed and the tracker has already acted.
func (p *Pipeline) worthDeciding(j job, drainBy time.Time) bool {
	now := time.Now()
	d, timed := p.line.Delay()
	inTime := !timed || now.Add(p.lastCost()).Before(j.at.Add(d))
	if j.part != 0 && now.Before(drainBy) && inTime {
		return true
	}
	j.f.Release()
	p.Stats.Undecided.Add(1)
	if j.part != 0 && inTime {
		p.failPart(j.part, gpio.CauseStopped)
	}
	return false
}

// capture takes a frame per part: for each trigger, or one per frame (stamped then).
// drop gives up a frame because the pipeline is behind (the newest is dropped rather
// than queued): its part falls to the fail-safe at its reject time.
func (p *Pipeline) drop(f capture.Frame, part uint64, queue int) {
	f.Release()
	p.Stats.Dropped.Add(1)
	p.failPart(part, gpio.CauseDropped)
	p.decided(part, f.Name, false, p.Generation().Config.Capture.Replay.Labels)
	p.log.Warn("frame dropped: pipeline behind", "seq", f.Seq, "part", part, "queue", queue)
}

// failPart sends part to the fail-safe for cause and says so on the event bus.
func (p *Pipeline) failPart(part uint64, cause gpio.Cause) {
	p.line.Fail(part, cause)
	p.events.Publish(events.Event{Kind: events.EventFailSafe, Time: time.Now(), Part: part, Cause: cause.String()})
}

// cameraLost tells the line (ready off while the camera is down, the alarm latched
// until reset), the log, the status line and the event bus, once per loss.
func (p *Pipeline) cameraLost(err error) {
	p.lostSince.Store(time.Now().UnixNano())
	p.line.SetReady(false)
	p.line.RaiseAlarm(gpio.CauseCameraLost)
	p.log.Error("camera lost: parts take the fail-safe until it is back", "err", err)
	p.events.Publish(events.Event{Kind: events.EventSourceLost, Time: time.Now(), Err: err.Error()})
}

// cameraBack undoes cameraLost but for the alarm, which stays latched until reset.
func (p *Pipeline) cameraBack(seq uint64) {
	p.lostSince.Store(0)
	p.line.SetReady(true)
	p.log.Info("camera back: frames flowing again", "seq", seq)
	p.events.Publish(events.Event{Kind: events.EventSourceBack, Time: time.Now()})
}

// lostPause is the least time between two Next calls while the camera is lost.
const lostPause = 50 * time.Millisecond

func (p *Pipeline) capture(ctx context.Context, out chan<- job) error {
	paced, triggered := p.src.Paced(), p.line.Triggered()
	if paced && triggered {
		return p.captureMatched(ctx, out)
	}
	defer close(out)
	lost := false
	var backoff *time.Timer
	for {
		var part uint64
		var at time.Time
		if triggered {
			select {
			case pt := <-p.line.Parts():
				part, at = pt.ID, pt.At
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		f, err := p.src.Next(ctx)
		if errors.Is(err, capture.ErrLost) && ctx.Err() == nil {
			if part != 0 {
				p.failPart(part, gpio.CauseCameraLost)
			}
			if !lost {
				lost = true
				p.Stats.CameraErrors.Add(1) // once per loss, however long it lasts
				p.cameraLost(err)
			}
			// The source backs off between reconnects itself; this pause only keeps one
			// that returns ErrLost at once from spinning a core.
			if backoff == nil {
				backoff = time.NewTimer(lostPause)
			} else {
				backoff.Reset(lostPause)
			}
			select {
			case <-backoff.C:
			case <-ctx.Done():
				backoff.Stop()
				return ctx.Err()
			}
			continue
		}
		if err == nil && lost {
			lost = false
			p.cameraBack(f.Seq)
		}
		if err != nil {
			if !errors.Is(err, capture.ErrEOF) && !errors.Is(err, context.Canceled) {
				p.Stats.CameraErrors.Add(1)
				if part != 0 {
					p.line.Fail(part, gpio.CauseCameraLost)
				}
			} else if part != 0 {
				p.line.Fail(part, gpio.CauseNoFrame)
			}
			return err
		}
		j := job{f: f, part: part, at: at}
		if !triggered && paced {
			// Without a trigger a frame is not a part: it becomes one when it is decided
			// (handle stamps it at its capture time). A frame that finds the queue full
			// is skipped, no part and no pulse: a camera faster than inference must not
			// turn into fail-safe rejects.
			select {
			case out <- j:
			default:
				p.skip(f, skipQueueFull, 0)
			}
			continue
		}
		// Unpaced (a triggered camera is captureMatched's): the source waits for the
		// queue. Untriggered, a frame becomes a part when the pipeline takes it (handle
		// stamps it): a frame read ahead when the run stops is no part, and gets no
		// fail-safe pulse.
		select {
		case out <- j:
		case <-ctx.Done():
			f.Release()
			if part != 0 {
				p.line.Fail(part, gpio.CauseStopped)
			}
			return ctx.Err()
		}
	}
}

func (p *Pipeline) failSafe(rec *events.Record, r events.Reason, cause gpio.Cause, err error) {
	rec.Reason, rec.Err = r, err
	switch p.gen.FailSafe {
	case gpio.FailReject:
		rec.Decision = events.Reject
	case gpio.FailAlarm:
		rec.Decision = events.Alarm
	default:
		rec.Decision = events.Pass
	}
	p.line.Fail(rec.Part, cause)
}

// freshest picks, for an untriggered camera's frame f taken at start, the frame to
// decide: a frame becomes a part only when it is decided (stamped at its capture
// time), so a frame whose decision could not reach the ejector in time is skipped
// rather than turned into a fail-safe pulse ("decision late") on a part never looked
// at. Two rules. Behind: while deciding f and everything queued behind it in order, at
// the slowest of the last 16 frames' costs, would make f late, f is skipped for the
// next queued frame (oldest-first with only a too-old check leaves every frame riding
// its deadline, and one slow inference then makes it late). Too old: the frame left,
// with no newer one waiting, is skipped when it cannot be decided in time at the
// median cost; the next frame then comes fresh, so frames keep being decided. Neither
// applies while the median cost is over the delay: then nothing could be inspected in
// time, and the late fail-safes raise the overrun alarm instead of hiding it.
// ok is false when f was skipped and no frame is left to decide.
func (p *Pipeline) freshest(f capture.Frame, start time.Time) (capture.Frame, bool) {
	d, timed := p.line.Delay()
	typical, hi := p.costRange()
	if !timed || typical >= d {
		return f, true
	}
	for n := len(p.jobs); n > 0 && start.Add(time.Duration(n+1)*hi).After(f.Time.Add(d)); n = len(p.jobs) {
		next, open := <-p.jobs // only Run receives: n > 0 frames are there
		if !open {
			break
		}
		p.skip(f, skipBehind, start.Sub(f.Time))
		p.taken.Add(1)
		f = next.f
	}
	if start.Add(typical).After(f.Time.Add(d)) {
		p.skip(f, skipTooOld, start.Sub(f.Time))
		return f, false
	}
	return f, true
}

func (p *Pipeline) handle(j job) {
	f, g := j.f, p.gen
	p.busy.Store(true)
	defer func() { p.taken.Add(1); p.busy.Store(false) }()
	start := time.Now()
	if j.part == 0 && !p.line.Triggered() {
		if p.src.Paced() {
			var ok bool
			if f, ok = p.freshest(f, start); !ok {
				return
			}
			j.f, j.part = f, p.line.Stamp(f.Time)
		} else {
			// An unpaced frame becomes a part when it is taken: it waited in the queue
			// only because the replay reads ahead, not on a belt, so its reject time
			// counts from now.
			j.part = p.line.Stamp(start)
		}
	}
	rec := events.Record{Seq: f.Seq, Part: j.part, Gen: g.N, Model: g.ModelSHA, Threshold: g.Threshold, Name: f.Name, Wait: start.Sub(f.Time)}
	p.Stats.Frames.Add(1)
	switch {
	case f.Err != nil:
		f.Release()
		p.Stats.BadFrames.Add(1)
		p.failSafe(&rec, events.BadFrame, gpio.CauseBadFrame, f.Err)
	default:
		copy(g.Engine.Input(), f.Pixels)
		f.Release() // the pixels are in the input tensor: a camera can refill the buffer
		if err := g.Engine.Invoke(); err != nil {
			p.Stats.InferErrors.Add(1)
			p.failSafe(&rec, events.InferFailure, gpio.CauseInferError, err)
			break
		}
		t1 := time.Now()
		rec.Infer = t1.Sub(start)
		s, err := g.Score(g.Engine.Output())
		rec.Scoring = time.Since(t1)
		if err != nil {
			p.Stats.InferErrors.Add(1)
			p.failSafe(&rec, events.InferFailure, gpio.CauseInferError, err)
			break
		}
		rec.Score = s
		p.noteCost(rec.Infer + rec.Scoring)
		p.last.Store(math.Float64bits(s))
		if s > g.Threshold {
			rec.Decision = events.Reject
		}
		p.line.Decide(j.part, rec.Decision == events.Reject)
	}
	if rec.Decision == events.Reject {
		p.Stats.Rejects.Add(1)
	}
	p.record(rec)
}

func (p *Pipeline) record(r events.Record) {
	lvl := slog.LevelInfo
	if r.Err != nil {
		lvl = slog.LevelWarn
	}
	if p.log.Enabled(context.Background(), lvl) {
		// The attributes go in the pipeline's own buffer, logged as one inline group
		// (a group with no key): a slog.Record keeps 5 attributes inline and
		// allocates for the rest, 288 B a frame for these 12. Only the inference
		// goroutine records, and the handlers format before LogAttrs returns.
		attrs := &p.frameAttrs
		*attrs = [len(p.frameAttrs)]slog.Attr{
			slog.Uint64("seq", r.Seq),
			slog.Uint64("part", r.Part),
			slog.String("frame", filepath.Base(r.Name)),
			slog.Float64("score", events.Round4(r.Score)),
			slog.Float64("threshold", events.Round4(r.Threshold)),
			slog.Uint64("gen", r.Gen),
			slog.String("model", shortSHA(r.Model)),
			slog.String("decision", r.Decision.String()),
			slog.String("reason", r.Reason.String()),
			slog.Duration("queue_wait", r.Wait.Round(time.Microsecond)),
			slog.Duration("infer", r.Infer.Round(time.Microsecond)),
			slog.Duration("score_time", r.Scoring.Round(time.Microsecond)),
		}
		n := len(attrs) - 1
		if r.Err != nil {
			attrs[n] = slog.String("err", r.Err.Error())
			n++
		}
		p.log.LogAttrs(context.Background(), lvl, "frame", slog.Attr{Value: slog.GroupValue(attrs[:n]...)})
	}
	if r.Decision >= 0 && r.Decision < events.DecisionCount && r.Reason >= 0 && r.Reason < events.ReasonCount {
		p.Stats.Decisions[r.Decision][r.Reason].Add(1)
	}
	p.decided(r.Part, r.Name, r.Decision == events.Reject, p.gen.Config.Capture.Replay.Labels)
	e := events.Event{Kind: events.EventDecision, Time: time.Now(), Record: r}
	if r.Reason == events.ByScore {
		sp := p.gen.Scorer.Params()
		e.Map = p.events.PutMap(p.gen.Scorer.Grid(), sp.Grid, p.gen.Engine.Input(), sp.Size)
	}
	p.events.Publish(e)
}

// label reads the demo frames' naming convention (capture.replay.labels: name),
// NNN_<label>.png with NNN digits: "good" or a defect kind. Other names are
// unlabelled ("") and count as neither.
func label(name string) string {
	base := strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))
	n, l, ok := strings.Cut(base, "_")
	if !ok || l == "" || n == "" || strings.Trim(n, "0123456789") != "" {
		return ""
	}
	for _, c := range l {
		if (c < 'a' || c > 'z') && c != '_' {
			return ""
		}
	}
	return l
}

// Summary is the account so far. Escapes, false rejects and rejects not pulsed are
// counted as parts reach the ejector, so the full account is the one taken after the
// tracker's Flush.
func (p *Pipeline) Summary() Summary {
	p.noteSourceDrops()
	labels := p.Generation().Config.Capture.Replay.Labels
	o := &p.outcomes
	o.Lock()
	defer o.Unlock()
	return Summary{
		Frames: p.Stats.Frames.Load(), Rejects: p.Stats.Rejects.Load(), Unpulsed: o.unpulsed, Dropped: p.Stats.Dropped.Load(),
		Unmatched: p.Stats.Unmatched.Load(), Skipped: p.Stats.Skipped.Load(), Undecided: p.Stats.Undecided.Load(), SourceDropped: p.Stats.SourceDropped.Load(),
		NotEjected: Tally{o.notEjected.N, slices.Clone(o.notEjected.Names)},
		BadFrames:  p.Stats.BadFrames.Load(), InferErrors: p.Stats.InferErrors.Load(), CameraErrors: p.Stats.CameraErrors.Load(),
		Labelled: labels == config.LabelsName,
		Escapes:  Tally{o.escapes.N, slices.Clone(o.escapes.Names)}, FalseRejects: Tally{o.falseRjs.N, slices.Clone(o.falseRjs.Names)},
	}
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
