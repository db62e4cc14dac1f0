package daemon_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/internal/demoline"
	"github.com/adtrd/adtrd/internal/testlib"
)

// The summary counts escapes and false rejects only for labelled frames (field case
// 12): good parts a user names part_ok.png are no escapes, and with labels: name the
// demo frames' NNN_<label>.png names are read.
func TestSummaryLabelsOnlyWhereGiven(t *testing.T) {
	own := t.TempDir() // a user's good parts, named as people name files
	for i, name := range []string{"part_ok.png", "cam_top.png", "IMG_0001.png"} {
		b, err := os.ReadFile(testlib.Demo("frames", fmt.Sprintf("%03d_good.png", 2*i)))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(own, name), b, 0o644)
	}
	for _, tc := range []struct {
		name              string
		dir               string
		labels            config.Labels
		v                 float32 // the flat map's value: every frame's score
		labelled          bool
		escapes, falseRjs uint64
	}{
		// unlabelled (the default): nothing is said about escapes, whatever the names
		{"own names, none", own, config.LabelsNone, 30, false, 0, 0},
		// names without NNN_ are no labels even when asked for
		{"own names, name", own, config.LabelsName, 1, true, 0, 0},
		// the demo frames, all rejected: the 8 good ones are false rejects
		{"demo, all rejected", testlib.Demo("frames"), config.LabelsName, 30, true, 0, 8},
		// the demo frames, all passed: the 8 defects are escapes
		{"demo, all passed", testlib.Demo("frames"), config.LabelsName, 1, true, 8, 0},
		// the demo frames unlabelled: no counts
		{"demo, none", testlib.Demo("frames"), config.LabelsNone, 1, false, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng, meta := newFloat(t, tc.v)
			r := newRig(t, eng, meta, replay(t, tc.dir, 0), rigSet{Labels: tc.labels}, 0)
			sum := r.run(t)
			if sum.Labelled != tc.labelled || sum.Escapes.N != tc.escapes || sum.FalseRejects.N != tc.falseRjs {
				t.Fatalf("summary %s: labelled %v, escapes %d, false rejects %d; want %v, %d, %d",
					sum, sum.Labelled, sum.Escapes.N, sum.FalseRejects.N, tc.labelled, tc.escapes, tc.falseRjs)
			}
		})
	}
}

// Counts follow what the reject output did (field case 12 C): with a tracking FIFO of
// one part and the ejector's clock held, every part after the first overflows, so its
// reject decision never pulses. Those are rejects not pulsed and, labelled, escapes.
func TestSummaryCountsWhatTheOutputDid(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		v                         float32 // every frame's score
		inFlight                  int
		rejects, unpulsed, pulses uint64
		escapes, falseRjs         uint64
	}{
		// all 16 decided reject, only the first (000_good) tracked and pulsed
		{"FIFO of one, all rejected", 30, 1, 16, 15, 1, 8, 1},
		// all passed: nothing to pulse, and the defects escape whether tracked or not
		{"FIFO of one, all passed", 1, 1, 0, 0, 0, 8, 0},
		// room for every part: every reject pulses
		{"FIFO of 64, all rejected", 30, 64, 16, 0, 16, 0, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng, meta := newFloat(t, tc.v)
			r := newRig(t, eng, meta, replay(t, testlib.Demo("frames"), 0), rigSet{Labels: config.LabelsName, InFlight: tc.inFlight}, 0)
			sum := r.run(t)
			st := r.line.Stats()
			if sum.Rejects != tc.rejects || sum.Unpulsed != tc.unpulsed || st.Pulses != tc.pulses ||
				sum.Escapes.N != tc.escapes || sum.FalseRejects.N != tc.falseRjs {
				t.Fatalf("summary %s: rejects %d, not pulsed %d, pulses %d, escapes %d, false rejects %d; want %d, %d, %d, %d, %d",
					sum, sum.Rejects, sum.Unpulsed, st.Pulses, sum.Escapes.N, sum.FalseRejects.N,
					tc.rejects, tc.unpulsed, tc.pulses, tc.escapes, tc.falseRjs)
			}
			if sum.Rejects-sum.Unpulsed != st.Pulses {
				t.Errorf("rejects %d - not pulsed %d != pulses %d (no fail-safe here)", sum.Rejects, sum.Unpulsed, st.Pulses)
			}
		})
	}
}

// A Tally keeps its count exact and at most MaxNames distinct names, so the summary of
// a --loop run stays small.
func TestTallyIsBounded(t *testing.T) {
	r := newLoopRig(t, 1)
	runFor(t, r, 3*16) // three passes over the demo frames, all passed
	r.flush(t)
	sum := r.p.Summary()
	if sum.Escapes.N < 16 || len(sum.Escapes.Names) != 8 {
		t.Fatalf("escapes %d with names %v: want every pass counted and the 8 defect names once", sum.Escapes.N, sum.Escapes.Names)
	}
	var big daemon.Tally
	for i := range 100 {
		big.Add(fmt.Sprintf("%03d_scratch.png", i))
	}
	if big.N != 100 || len(big.Names) != daemon.MaxNames {
		t.Fatalf("tally of 100 names: N %d, %d names kept", big.N, len(big.Names))
	}
}

// Stopping an unpaced, untriggered replay stamps no part for the frame read ahead
// (field case 12 B): every part decided pass, no fail-safe, no pulse.
func TestStoppingUnpacedReplayGivesNoPhantomPart(t *testing.T) {
	r := newLoopRig(t, 1)
	sum := runFor(t, r, 20)
	r.flush(t)
	st := r.line.Stats()
	if st.Pulses != 0 || st.FailSafes() != 0 || st.Parts != sum.Frames {
		t.Fatalf("after stopping: %d frames, %d parts, %d pulses, %d fail-safes; want parts = frames and no pulse", sum.Frames, st.Parts, st.Pulses, st.FailSafes())
	}
}

func newLoopRig(t *testing.T, v float32) *rig {
	eng, meta := newFloat(t, v)
	src, err := capture.NewReplay(capture.ReplayOptions{Path: testlib.Demo("frames"), Loop: true, Size: capture.Size{W: 224, H: 224}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return newRig(t, eng, meta, src, rigSet{Labels: config.LabelsName}, 0)
}

// runFor runs r until it has decided n frames, then stops it as a signal would.
func runFor(t *testing.T, r *rig, n int) daemon.Summary {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			r.mu.Lock()
			done := len(r.recs) >= n
			r.mu.Unlock()
			if done {
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	sum, err := r.p.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r.stop()
	return sum
}

// droppingReplay is a source that also drops frames itself, as a camera whose frame
// buffers are all held does (capture.Camera.Dropped).
type droppingReplay struct {
	daemon.Source
	n atomic.Uint64
}

func (d *droppingReplay) Next(ctx context.Context) (capture.Frame, error) {
	d.n.Add(2) // two frames read and dropped before each one delivered
	return d.Source.Next(ctx)
}

func (d *droppingReplay) Dropped() uint64 { return d.n.Load() }

// Frames the camera source dropped before the queue reach the summary, its keep-up
// line and the counters /metrics exports (they reached none before).
func TestSourceDropsReachTheSummary(t *testing.T) {
	eng, meta := newFloat(t, 1)
	src := &droppingReplay{Source: demoline.Limited(replay(t, testlib.Demo("frames"), 0), 4)}
	r := newRig(t, eng, meta, src, rigSet{}, 0)
	sum := r.run(t)
	if sum.SourceDropped != src.Dropped() || sum.SourceDropped < 8 || r.p.Counters().SourceDropped.Load() != sum.SourceDropped {
		t.Fatalf("summary %s: dropped by the source %d, want %d (and the same in the counters)", sum, sum.SourceDropped, src.Dropped())
	}
	if !strings.Contains(sum.String(), fmt.Sprintf("dropped by the camera %d", sum.SourceDropped)) ||
		!strings.Contains(sum.KeepUp(), "dropped by the camera source") {
		t.Fatalf("summary %q, keep-up %q", sum, sum.KeepUp())
	}
}
