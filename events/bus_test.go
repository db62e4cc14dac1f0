package events_test

import (
	"testing"
	"time"

	"github.com/adtrd/adtrd/events"
)

// A subscriber that never reads drops and counts what does not fit; the publisher
// never waits for it, and a subscriber that keeps up still gets everything.
func TestBusSlowSubscriberDropsAndCounts(t *testing.T) {
	b := events.NewBus()
	slow, fast := b.Subscribe(2), b.Subscribe(100)
	start := time.Now()
	for i := 0; i < 100; i++ {
		b.Publish(events.Event{Kind: events.EventDecision, Part: uint64(i + 1)})
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("100 publishes took %v", d)
	}
	if slow.Dropped() != 98 || fast.Dropped() != 0 {
		t.Fatalf("dropped: slow %d (want 98), fast %d (want 0)", slow.Dropped(), fast.Dropped())
	}
	for i := 0; i < 100; i++ {
		if e := <-fast.C(); e.Part != uint64(i+1) {
			t.Fatalf("event %d is part %d: out of order", i, e.Part)
		}
	}
	if e := <-slow.C(); e.Part != 1 {
		t.Fatalf("the slow subscriber's first event is part %d", e.Part)
	}
	slow.Close()
	slow.Close() // twice is fine
	b.Publish(events.Event{Part: 101})
	select {
	case e := <-slow.C():
		if e.Part == 101 {
			t.Fatal("a closed subscription still receives")
		}
	default:
	}
	if e := <-fast.C(); e.Part != 101 {
		t.Fatalf("got part %d", e.Part)
	}
}

// Publishing is on the frame path: no allocation, whatever the subscribers do.
func TestBusPublishDoesNotAllocate(t *testing.T) {
	b := events.NewBus()
	b.Subscribe(1)
	b.Subscribe(1 << 10)
	e := events.Event{Kind: events.EventDecision, Record: events.Record{Seq: 1, Score: 3}}
	if n := testing.AllocsPerRun(1000, func() { b.Publish(e) }); n != 0 {
		t.Fatalf("%v allocations per publish", n)
	}
}

// The ring keeps the maps and frames of the last MapRing decisions: a handle finds its
// own map and frame until MapRing later ones overwrite it, and never another's.
func TestBusMapRing(t *testing.T) {
	b := events.NewBus()
	const side, size = 2, 2
	put := func(v byte) events.MapRef {
		grid := []float32{float32(v), 0, 0, 0}
		frame := make([]byte, size*size*3)
		frame[0] = v
		return b.PutMap(grid, side, frame, size)
	}
	first := put(1)
	if first.Grid != side || first.Size != size {
		t.Fatalf("ref %+v: want grid %d, size %d", first, side, size)
	}
	refs := []events.MapRef{first}
	for v := 2; v <= events.MapRing; v++ {
		refs = append(refs, put(byte(v)))
	}
	grid, frame := make([]float32, side*side), make([]byte, size*size*3)
	for i, ref := range refs {
		if !b.Map(ref, grid) || grid[0] != float32(i+1) || !b.Frame(ref, frame) || frame[0] != byte(i+1) {
			t.Fatalf("decision %d: map %v, frame %v", i+1, grid, frame[:3])
		}
	}
	put(events.MapRing + 1) // overwrites the first's slot
	if b.Map(first, grid) || b.Frame(first, frame) {
		t.Fatal("the oldest decision's map is still found after MapRing later ones")
	}
	if !b.Map(refs[1], grid) || grid[0] != 2 {
		t.Fatalf("the second decision's map %v, want it kept", grid)
	}
	if b.Map(events.MapRef{}, grid) || b.Frame(events.MapRef{}, frame) {
		t.Fatal("the zero handle names a map")
	}
	if b.Map(refs[1], make([]float32, 1)) {
		t.Fatal("a map copied into a destination of the wrong length")
	}
	// A frame that is not size x size RGB is not kept: the map alone.
	ref := b.PutMap([]float32{7, 0, 0, 0}, side, make([]byte, 5), size)
	if ref.Size != 0 || b.Frame(ref, frame) || !b.Map(ref, grid) || grid[0] != 7 {
		t.Fatalf("ref %+v with a short frame: want the map alone", ref)
	}
}

// Decisions, reasons and event kinds have the names records, logs and metrics labels
// use; an out-of-range value says so instead of borrowing a name.
func TestNames(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{events.Pass.String(), "pass"},
		{events.Reject.String(), "reject"},
		{events.Alarm.String(), "alarm"},
		{events.DecisionCount.String(), "decision(3)"}, // the count is no decision
		{events.ByScore.String(), "score"},
		{events.BadFrame.String(), "fail-safe: bad frame"},
		{events.InferFailure.String(), "fail-safe: inference error"},
		{events.ReasonCount.String(), "reason(3)"}, // the count is no reason
		{events.EventDecision.String(), "decision"},
		{events.EventOverrun.String(), "overrun"},
		{events.EventKind(-1).String(), "event(-1)"}, // below the range
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	if got := events.Round4(10.07084999); got != 10.0708 {
		t.Errorf("Round4(10.07084999) = %v, want 10.0708", got)
	}
}
