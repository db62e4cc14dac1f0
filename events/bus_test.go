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
