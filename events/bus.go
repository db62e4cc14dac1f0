// Package events is the pipeline's event stream and its vocabulary: the bus, its
// events, the decision records and the counters that consumers (the page, metrics,
// the recorder, MQTT) read. It is a leaf: no cgo, no engine, no pins, no camera, so
// consumers build without them.
package events

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// EventKind is what an Event reports.
type EventKind int

const (
	EventDecision   EventKind = iota // a frame decided: Record (score, decision, reason), Map
	EventFailSafe                    // a part fell to the fail-safe before inference: Cause, Part
	EventSourceLost                  // the camera was lost: Err
	EventSourceBack                  // frames flow again after a loss
	EventReload                      // a reload was applied (Gen) or failed (Err)
	// EventOverrun: the overrun alarm was raised, the line cannot keep up (gpio.OverrunParts
	// of the last parts fell to the fail-safe because inference was behind); Part is the
	// part that tipped it, Cause "line cannot keep up".
	EventOverrun
)

var eventKindNames = []string{"decision", "fail-safe", "source lost", "source back", "reload", "overrun"}

func (k EventKind) String() string {
	if k < 0 || int(k) >= len(eventKindNames) {
		return fmt.Sprintf("event(%d)", int(k))
	}
	return eventKindNames[k]
}

// Event is one thing that happened on the line. Values only: an Event owns nothing a
// later frame overwrites (the anomaly map is reached through Map and Bus.Map).
type Event struct {
	Kind      EventKind
	Time      time.Time
	Record    Record  // EventDecision
	Map       MapRef  // EventDecision: the frame's low-resolution anomaly map
	Part      uint64  // EventFailSafe, EventOverrun
	Cause     string  // EventFailSafe: "frame dropped", "camera lost", ...; EventOverrun
	Gen       uint64  // EventReload: the generation now running
	Model     string  // EventReload: its model's sha256
	Threshold float64 // EventReload: its threshold
	Err       string  // EventSourceLost, a failed EventReload
}

// MapRef names a decision's anomaly map, and the model input it was computed from,
// in the bus's ring of recent decisions.
type MapRef struct {
	seq  uint64 // 1-based; 0: no map
	Grid int    // the map is Grid x Grid
	Size int    // the frame is Size x Size RGB, 3 bytes a pixel: the model's input bytes
}

// Bus fans events out to any number of subscribers without ever blocking the
// publisher (the inference goroutine): each subscriber has a bounded channel, and an
// event that does not fit is dropped and counted for that subscriber alone. It keeps
// the anomaly maps of the last MapRing decisions, so a slow subscriber (a heatmap
// renderer) can still fetch the map of a decision it has just read.
type Bus struct {
	subs atomic.Pointer[[]*Subscription]
	mu   sync.Mutex // subscribe/unsubscribe, and the map ring

	ring    [MapRing][]float32
	frames  [MapRing][]byte
	ringSeq [MapRing]uint64
	next    uint64
}

// MapRing is how many recent decisions' maps and frames a Bus keeps.
const MapRing = 16

// NewBus makes an empty bus.
func NewBus() *Bus {
	b := &Bus{}
	b.subs.Store(&[]*Subscription{})
	return b
}

// Subscription is one subscriber's bounded view of the bus.
type Subscription struct {
	bus     *Bus
	c       chan Event
	dropped atomic.Uint64
	closed  atomic.Bool
}

// Subscribe adds a subscriber whose channel holds up to buffer events (at least 1).
func (b *Bus) Subscribe(buffer int) *Subscription {
	s := &Subscription{bus: b, c: make(chan Event, max(buffer, 1))}
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.subs.Load()
	subs := append(append(make([]*Subscription, 0, len(old)+1), old...), s)
	b.subs.Store(&subs)
	return s
}

// C is the subscriber's events, in publication order, with gaps where it fell behind.
func (s *Subscription) C() <-chan Event { return s.c }

// Dropped is how many events this subscriber missed because its channel was full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close unsubscribes; the channel is not closed (a publish may race with it), it
// just receives nothing more. Safe twice.
func (s *Subscription) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	b := s.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.subs.Load()
	subs := make([]*Subscription, 0, len(old))
	for _, o := range old {
		if o != s {
			subs = append(subs, o)
		}
	}
	b.subs.Store(&subs)
	return nil
}

// Publish offers e to every subscriber; it never blocks and does not allocate.
func (b *Bus) Publish(e Event) {
	for _, s := range *b.subs.Load() {
		select {
		case s.c <- e:
		default:
			s.dropped.Add(1)
		}
	}
}

// PutMap copies grid (side x side real values) and the frame's model input (size x
// size RGB) into the ring and returns their handle, for the publisher's next
// decision event. The ring's buffers are allocated once per slot and size.
func (b *Bus) PutMap(grid []float32, side int, frame []byte, size int) MapRef {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.next++
	i := b.next % MapRing
	b.ring[i] = fill(b.ring[i], grid)
	if len(frame) != size*size*3 {
		frame, size = nil, 0 // not RGB bytes: the map alone
	}
	b.frames[i] = fill(b.frames[i], frame)
	b.ringSeq[i] = b.next
	return MapRef{seq: b.next, Grid: side, Size: size}
}

func fill[T any](buf, src []T) []T {
	if cap(buf) < len(src) {
		buf = make([]T, len(src))
	}
	buf = buf[:len(src)]
	copy(buf, src)
	return buf
}

// Frame copies the model input of ref's decision into dst (Size*Size*3 bytes, RGB)
// and reports whether it was still in the ring.
func (b *Bus) Frame(ref MapRef, dst []byte) bool {
	if ref.seq == 0 || ref.Size == 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	i := ref.seq % MapRing
	if b.ringSeq[i] != ref.seq || len(dst) != len(b.frames[i]) {
		return false
	}
	copy(dst, b.frames[i])
	return true
}

// Map copies the map ref names into dst (Grid*Grid values) and reports whether it
// was still in the ring (false: MapRing later decisions have overwritten it, or ref
// names no map).
func (b *Bus) Map(ref MapRef, dst []float32) bool {
	if ref.seq == 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	i := ref.seq % MapRing
	if b.ringSeq[i] != ref.seq || len(dst) != len(b.ring[i]) {
		return false
	}
	copy(dst, b.ring[i])
	return true
}
