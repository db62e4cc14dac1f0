package daemon_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/internal/testlib"
	"github.com/adtrd/adtrd/model"
)

// A subscriber that never reads drops and counts what does not fit; the publisher
// never waits for it, and a subscriber that keeps up still gets everything.
func TestBusSlowSubscriberDropsAndCounts(t *testing.T) {
	b := daemon.NewBus()
	slow, fast := b.Subscribe(2), b.Subscribe(100)
	start := time.Now()
	for i := 0; i < 100; i++ {
		b.Publish(daemon.Event{Kind: daemon.EventDecision, Part: uint64(i + 1)})
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
	b.Publish(daemon.Event{Part: 101})
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
	b := daemon.NewBus()
	b.Subscribe(1)
	b.Subscribe(1 << 10)
	e := daemon.Event{Kind: daemon.EventDecision, Record: daemon.Record{Seq: 1, Score: 3}}
	if n := testing.AllocsPerRun(1000, func() { b.Publish(e) }); n != 0 {
		t.Fatalf("%v allocations per publish", n)
	}
}

// A subscriber that never reads does not slow the pipeline: every frame is still
// decided, and its drops are counted. Each decision's map can be fetched from the
// bus while it is among the last MapRing decisions.
func TestPipelineWithAStuckSubscriber(t *testing.T) {
	meta, err := model.Load(testlib.Demo("adtr.tflite.json"))
	if err != nil {
		t.Fatal(err)
	}
	eng := newFake(meta)
	for i := range eng.out {
		eng.out[i] = int8(i % 100)
	}
	r := newRig(t, &eng, meta, replay(t, testlib.Demo("frames"), 0), rigSet{}, 0)
	stuck := r.p.Events().Subscribe(1)
	maps := r.p.Events().Subscribe(64)
	sum := r.run(t)
	if int(sum.Frames) != len(r.recs) || sum.Frames != 16 {
		t.Fatalf("%d frames, %d records", sum.Frames, len(r.recs))
	}
	if stuck.Dropped() != sum.Frames-1 {
		t.Fatalf("stuck subscriber dropped %d of %d", stuck.Dropped(), sum.Frames)
	}
	grid := make([]float32, meta.Grid[0]*meta.Grid[1])
	var got int
	var last daemon.Event
	for len(maps.C()) > 0 {
		e := <-maps.C()
		last = e
		if e.Kind != daemon.EventDecision || e.Map.Grid != meta.Grid[0] {
			t.Fatalf("event %+v", e)
		}
		if r.p.Events().Map(e.Map, grid) {
			got++
			want := (float32(eng.out[7]) - float32(meta.Output.ZeroPoint)) * float32(meta.Output.Scale)
			if grid[7] != want {
				t.Fatalf("map value %v, want %v", grid[7], want)
			}
		}
	}
	if got != min(daemon.MapRing, 16) {
		t.Fatalf("%d maps still fetchable, want the last %d", got, daemon.MapRing)
	}
	// With its map, the bus keeps the frame's model input: the last decision's is
	// what the engine was last given.
	frame := make([]byte, last.Map.Size*last.Map.Size*3)
	if last.Map.Size != meta.Input.Width || !r.p.Events().Frame(last.Map, frame) || !bytes.Equal(frame, eng.Input()) {
		t.Fatalf("frame of the last decision (size %d) is not the engine's last input", last.Map.Size)
	}
}
