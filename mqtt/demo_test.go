package mqtt

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/internal/demoline"
	"github.com/adtrd/adtrd/internal/testlib"
)

// A demo run, as the daemon makes it (the real engine on the demo frames), with the
// broker stopped a third of the way in and started again at two thirds: the plant's
// subscriber gets every reject the run decided, each once or more, and no pass.
// The frames are handed out one at a time, so the test holds on a loaded machine.
func TestEveryRejectOfADemoRunAcrossABrokerRestart(t *testing.T) {
	b := testlib.StartMosquitto(t)
	sub := subscribe(t, b.URL(), "plant-mes", false, "plant/line3/adtrd/decision")
	// The demo frames three times over: 48 parts at 10 a second.
	frames := t.TempDir()
	ents, err := os.ReadDir(testlib.Demo("frames"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		for _, e := range ents {
			os.Symlink(testlib.Demo("frames", e.Name()), filepath.Join(frames, string(rune('a'+i))+e.Name()))
		}
	}
	// The line takes a frame when the loop below hands it one: the outage spans
	// frames 17 to 32 however fast or slow this machine infers (a pace of 10 frames a
	// second is not kept on a loaded machine, and a replay let run would be over
	// before the broker stops).
	gate := make(chan struct{})
	line := demoline.New(t, demoline.Options{Frames: frames, Gate: gate})
	watch := line.Pipeline.Events().Subscribe(256)
	defer watch.Close()
	pub := newPublisher(t, b.URL(), line.Pipeline.Events(), nil)
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the publisher's connection", 10*time.Second, func() bool { return pub.Stats().Connected })
	line.Start(t)
	rejects := map[uint64]bool{}
	for i := range 48 {
		switch i {
		case 16:
			b.Stop()
		case 32:
			b.Start()
		}
		select {
		case gate <- struct{}{}:
		case <-time.After(30 * time.Second):
			t.Fatalf("the demo line did not take frame %d", i+1)
		}
		select {
		case e := <-watch.C():
			if e.Kind != events.EventDecision {
				t.Fatalf("frame %d: a %v event where its decision was expected", i+1, e.Kind)
			}
			if e.Record.Decision == events.Reject {
				rejects[e.Record.Seq] = true
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no decision for frame %d", i+1)
		}
	}
	close(gate) // the replay's end
	sum := line.Wait(t)
	if uint64(len(rejects)) != sum.Rejects || sum.Rejects == 0 || watch.Dropped() != 0 {
		t.Fatalf("%d rejects seen, summary %d, %d events missed", len(rejects), sum.Rejects, watch.Dropped())
	}
	got := map[uint64]int{}
	for len(got) < len(rejects) {
		m := sub.next(t, 30*time.Second)
		var d struct {
			Seq      uint64
			Decision string
		}
		if err := json.Unmarshal([]byte(m.payload), &d); err != nil {
			t.Fatal(err)
		}
		if !rejects[d.Seq] || d.Decision != "reject" {
			t.Fatalf("message %s: not one of the run's rejects", m.payload)
		}
		got[d.Seq]++
	}
	if s := pub.Stats(); s.Dropped != 0 || s.Reconnects < 1 {
		t.Fatalf("publisher %+v: want no drop and a reconnect", s)
	}
}
