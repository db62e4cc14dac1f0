package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/gpio"
)

// matcher gives a camera's frames to trigger-stamped parts by time: a frame captured
// at t belongs to the oldest waiting part whose window [At-before, At+after] holds t.
// Parts whose window has passed get no frame; a frame that falls in no waiting part's
// window belongs to none. Because every decision rests on times, not on counting, a
// missed, extra, late or bunched frame never moves a frame to another part.
type matcher struct {
	before, after time.Duration
	ring          []gpio.Part // waiting parts, oldest first, from head
	head, n       int
}

func newMatcher(before, after time.Duration, capacity int) *matcher {
	return &matcher{before: before, after: after, ring: make([]gpio.Part, max(capacity, 1))}
}

// add queues a part; with the queue full the oldest is given up (returned, ok true).
func (m *matcher) add(p gpio.Part) (dropped gpio.Part, ok bool) {
	if m.n == len(m.ring) {
		dropped, ok = m.pop(), true
	}
	m.ring[(m.head+m.n)%len(m.ring)] = p
	m.n++
	return dropped, ok
}

func (m *matcher) pop() gpio.Part {
	p := m.ring[m.head]
	m.head = (m.head + 1) % len(m.ring)
	m.n--
	return p
}

// frame finds the part for a frame captured at t: expired is called for each waiting
// part whose window ended before t (it will get no frame), in order.
func (m *matcher) frame(t time.Time, expired func(gpio.Part)) (uint64, time.Time, bool) {
	for m.n > 0 && t.After(m.ring[m.head].At.Add(m.after)) {
		expired(m.pop())
	}
	if m.n > 0 && !t.Before(m.ring[m.head].At.Add(-m.before)) {
		pt := m.pop()
		return pt.ID, pt.At, true
	}
	return 0, time.Time{}, false
}

// expire gives up the parts whose window ended before now-grace: the grace covers a
// frame captured in the window that is still on its way through the pipe.
func (m *matcher) expire(now time.Time, grace time.Duration, expired func(gpio.Part)) {
	for m.n > 0 && now.After(m.ring[m.head].At.Add(m.after+grace)) {
		expired(m.pop())
	}
}

// all gives up every waiting part (the camera is lost, or the run ends).
func (m *matcher) all(expired func(gpio.Part)) {
	for m.n > 0 {
		expired(m.pop())
	}
}

// next is when the oldest waiting part's window ends (ok false: none waits).
func (m *matcher) next() (time.Time, bool) {
	if m.n == 0 {
		return time.Time{}, false
	}
	return m.ring[m.head].At.Add(m.after), true
}

// frameGrace is how long after a part's window a frame captured in it may still
// arrive through the pipe before the part is given up.
const frameGrace = 100 * time.Millisecond

type pumped struct {
	f   capture.Frame
	err error
}

// captureMatched is capture for a triggered camera: parts come from the trigger, frames
// from the camera at its own rate, and the matcher pairs them by time. A part with no
// frame in its window takes the fail-safe ("no frame"); a frame in no part's window is
// dropped and counted (Stats.Unmatched).
func (p *Pipeline) captureMatched(ctx context.Context, out chan<- job) error {
	defer close(out)
	before, after := p.set.FrameBefore, p.set.FrameAfter
	if before == 0 && after == 0 {
		before, after = 20*time.Millisecond, 100*time.Millisecond
	}
	inFlight := p.set.InFlight
	if inFlight == 0 {
		inFlight = 64
	}
	m := newMatcher(before, after, inFlight)
	fail := func(cause gpio.Cause) func(gpio.Part) {
		return func(pt gpio.Part) { p.failPart(pt.ID, cause) }
	}
	noFrame, camLost := fail(gpio.CauseNoFrame), fail(gpio.CauseCameraLost)
	// The camera is read on its own goroutine, so that parts are taken while Next waits.
	frames := make(chan pumped)
	pumpDone := make(chan struct{})
	go func() {
		defer close(pumpDone)
		for {
			f, err := p.src.Next(ctx)
			select {
			case frames <- pumped{f, err}:
			case <-ctx.Done():
				f.Release()
				return
			}
			if err != nil && !errors.Is(err, capture.ErrLost) {
				return
			}
			if err != nil {
				t := time.NewTimer(lostPause) // a source that returns ErrLost at once must not spin
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return
				}
			}
		}
	}()
	defer func() {
		m.all(noFrame)
		<-pumpDone
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	lost := false
	for {
		if at, ok := m.next(); ok {
			timer.Reset(time.Until(at.Add(frameGrace)))
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case pt := <-p.line.Parts():
			if lost {
				camLost(pt)
				continue
			}
			if old, full := m.add(pt); full {
				noFrame(old)
			}
		case <-timer.C:
			m.expire(time.Now(), frameGrace, noFrame)
		case r := <-frames:
			if errors.Is(r.err, capture.ErrLost) {
				m.all(camLost)
				if !lost {
					lost = true
					p.Stats.CameraErrors.Add(1)
					p.cameraLost(r.err)
				}
				continue
			}
			if r.err != nil {
				if !errors.Is(r.err, capture.ErrEOF) && !errors.Is(r.err, context.Canceled) {
					p.Stats.CameraErrors.Add(1)
				}
				return r.err
			}
			if lost {
				lost = false
				p.cameraBack(r.f.Seq)
			}
			// Parts first: a trigger edge already taken by the tracker must be waiting
			// before the frame it caused is matched (select picks at random).
			for drained := false; !drained; {
				select {
				case pt := <-p.line.Parts():
					if old, full := m.add(pt); full {
						noFrame(old)
					}
				default:
					drained = true
				}
			}
			id, at, ok := m.frame(r.f.Time, noFrame)
			if !ok {
				r.f.Release()
				p.Stats.Unmatched.Add(1)
				p.log.Debug("frame matches no part: dropped", "seq", r.f.Seq)
				continue
			}
			select {
			case out <- job{f: r.f, part: id, at: at}:
			default:
				p.drop(r.f, id, cap(out))
			}
		}
	}
}
