package daemon_test

import (
	"bytes"
	"testing"

	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/internal/testlib"
	"github.com/adtrd/adtrd/model"
)

// A subscriber that never reads does not slow the pipeline: every frame is still
// decided, and its drops are counted. Each decision's map can be fetched from the
// bus while it is among the last MapRing decisions.
func TestPipelineWithAStuckSubscriber(t *testing.T) {
	meta, err := model.Load(testlib.Demo("adtr.tflite.json"))
	if err != nil {
		t.Fatal(err)
	}
	eng := newFake(meta)
	for i := range eng.Out {
		eng.Out[i] = int8(i % 100)
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
	var last events.Event
	for len(maps.C()) > 0 {
		e := <-maps.C()
		last = e
		if e.Kind != events.EventDecision || e.Map.Grid != meta.Grid[0] {
			t.Fatalf("event %+v", e)
		}
		if r.p.Events().Map(e.Map, grid) {
			got++
			want := (float32(eng.Out[7]) - float32(meta.Output.ZeroPoint)) * float32(meta.Output.Scale)
			if grid[7] != want {
				t.Fatalf("map value %v, want %v", grid[7], want)
			}
		}
	}
	if got != min(events.MapRing, 16) {
		t.Fatalf("%d maps still fetchable, want the last %d", got, events.MapRing)
	}
	// With its map, the bus keeps the frame's model input: the last decision's is
	// what the engine was last given.
	frame := make([]byte, last.Map.Size*last.Map.Size*3)
	if last.Map.Size != meta.Input.Width || !r.p.Events().Frame(last.Map, frame) || !bytes.Equal(frame, eng.Input()) {
		t.Fatalf("frame of the last decision (size %d) is not the engine's last input", last.Map.Size)
	}
}
