package daemon_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/internal/testlib"
	"github.com/adtrd/adtrd/model"
)

// pooledSource is what a camera source looks like to the pipeline: frames in a
// fixed pool of buffers that must come back through Release, and a camera that is
// lost for a while (ErrLost) and then recovers. script: 'f' a frame, 'b' a bad frame,
// 'l' a lost camera; then the end of the stream.
type pooledSource struct {
	pool   *capture.Pool
	script string
	i      int
	seq    uint64
	noBuf  int // frames the source had no free buffer for
}

func (s *pooledSource) Paced() bool  { return false }
func (s *pooledSource) Close() error { return nil }
func (s *pooledSource) Next(ctx context.Context) (capture.Frame, error) {
	if s.i == len(s.script) {
		return capture.Frame{}, capture.ErrEOF
	}
	c := s.script[s.i]
	s.i++
	if c == 'l' {
		return capture.Frame{}, fmt.Errorf("%w: test camera unplugged", capture.ErrLost)
	}
	for {
		_, idx, ok := s.pool.Get()
		if ok {
			s.seq++
			f := capture.Frame{Seq: s.seq, Time: time.Now(), Name: fmt.Sprintf("f%d", s.seq)}
			if c == 'b' {
				f.Err = fmt.Errorf("%w: test: torn frame", capture.ErrFrame)
			}
			return s.pool.Frame(idx, f), nil
		}
		// An unpaced source waits for a buffer; a camera would drop the frame instead.
		s.noBuf++
		select {
		case <-ctx.Done():
			return capture.Frame{}, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// Every frame of a pooled source comes back to its pool (good, bad and after a
// loss), a lost camera is counted and logged once per loss and does not end the run,
// and frames after the recovery are decided as before.
func TestPooledSourceLostAndRecovered(t *testing.T) {
	meta, err := model.Load(testlib.Demo("adtr.tflite.json"))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := capture.NewPool(2, meta.Input.Width*meta.Input.Height*3)
	if err != nil {
		t.Fatal(err)
	}
	src := &pooledSource{pool: pool, script: "ffffbllllfffllf"}
	eng := newFake(meta)
	var logs logBuf
	r := newRig(t, &eng, meta, src, rigSet{Log: slog.New(slog.NewTextHandler(&logs, nil))}, 0)
	sum := r.run(t)
	if sum.Frames != 9 || sum.BadFrames != 1 || sum.CameraErrors != 2 {
		t.Fatalf("summary %+v, want 9 frames (1 bad) and 2 camera errors (two losses, six polls while lost)", sum)
	}
	if got := pool.Free(); got != 2 {
		t.Fatalf("%d of 2 pool buffers back after the run", got)
	}
	out := logs.String()
	if n := strings.Count(out, "camera lost"); n != 2 {
		t.Fatalf("%d 'camera lost' lines for 2 losses:\n%s", n, out)
	}
	if n := strings.Count(out, "camera back"); n != 2 {
		t.Fatalf("%d 'camera back' lines for 2 recoveries:\n%s", n, out)
	}
	// The ready output goes off for each loss and on again at each recovery: on at
	// the first frame, off, on, off, on, off at the end of the run.
	if got, want := fmt.Sprint(r.edges("ready")), "[true false true false true false]"; got != want {
		t.Fatalf("ready output %s, want %s", got, want)
	}
	if st := r.line.Stats(); st.Alarms != 2 || !r.line.Alarm() {
		t.Fatalf("%d alarms (latched %v) for 2 losses", st.Alarms, r.line.Alarm())
	}
	if !r.p.CameraLost().IsZero() {
		t.Fatal("camera still marked lost after it came back")
	}
}

// Release is safe twice and on copies: a buffer goes back to the pool once.
func TestFrameReleaseOnce(t *testing.T) {
	pool, _ := capture.NewPool(1, 4)
	_, idx, ok := pool.Get()
	if !ok {
		t.Fatal("no buffer")
	}
	f := pool.Frame(idx, capture.Frame{Seq: 1})
	g := f // a copy of the same frame
	if _, _, ok := pool.Get(); ok {
		t.Fatal("a held buffer was handed out again")
	}
	f.Release()
	f.Release()
	g.Release()
	if pool.Free() != 1 {
		t.Fatalf("free %d after releasing one buffer three times", pool.Free())
	}
	if f.Pixels != nil {
		t.Fatal("a released frame still shows its pixels")
	}
	var unpooled capture.Frame
	unpooled.Release() // nothing to give back
}
