package record

import (
	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/internal/testlib"

	"bytes"
	"encoding/json"
	"errors"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a manual Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 2, 13, 15, 0, 123_000_000, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeFrames stands in for the bus's ring: every ref finds the same frame and map,
// unless gone.
type fakeFrames struct {
	frame []byte
	grid  []float32
	gone  bool
}

func newFakeFrames(size, gridN int) *fakeFrames {
	f := &fakeFrames{frame: make([]byte, size*size*3), grid: make([]float32, gridN*gridN)}
	for i := range f.frame {
		f.frame[i] = byte(i * 7 / 5)
	}
	for i := range f.grid {
		f.grid[i] = float32(i%gridN) * 20 / float32(gridN)
	}
	return f
}

func (f *fakeFrames) Frame(ref events.MapRef, dst []byte) bool {
	if f.gone || len(dst) != len(f.frame) {
		return false
	}
	copy(dst, f.frame)
	return true
}

func (f *fakeFrames) Map(ref events.MapRef, dst []float32) bool {
	if f.gone || len(dst) != len(f.grid) {
		return false
	}
	copy(dst, f.grid)
	return true
}

type fixture struct {
	r    *Recorder
	clk  *clock
	src  *fakeFrames
	log  *testlib.SyncBuffer
	dir  string
	seq  uint64
	size int
}

// newFixture is a recorder on a fake ring of 224 x 224 frames and 14 x 14 maps, with
// a manual clock; opt's Dir defaults to a fresh temporary folder. handle is called
// directly, as the recording goroutine would.
func newFixture(t testing.TB, opt Options) *fixture {
	t.Helper()
	f := &fixture{clk: newClock(), src: newFakeFrames(224, 14), log: &testlib.SyncBuffer{}, size: 224}
	if opt.Dir == "" {
		opt.Dir = filepath.Join(t.TempDir(), "recordings")
	}
	f.dir = opt.Dir
	opt.Now = f.clk.Now
	opt.Log = slog.New(slog.NewTextHandler(f.log, nil))
	r, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	r.src = f.src
	t.Cleanup(func() { r.Close() })
	f.r = r
	return f
}

// event is a decision by score at the clock's time, the next sequence number.
func (f *fixture) event(score, threshold float64, d events.Decision) events.Event {
	f.seq++
	return events.Event{
		Kind: events.EventDecision, Time: f.clk.Now(),
		Record: events.Record{Seq: f.seq, Part: f.seq + 100, Gen: 3, Model: strings.Repeat("ab", 32), Name: "/frames/part_" + string(rune('a'+f.seq%26)) + ".png",
			Score: score, Threshold: threshold, Decision: d, Reason: events.ByScore},
		Map: events.MapRef{Grid: 14, Size: f.size},
	}
}

// reject records one rejected frame.
func (f *fixture) reject() events.Event {
	e := f.event(12, 10, events.Reject)
	f.r.handle(e)
	return e
}

// onDisk lists the recordings' folders in the directory, oldest first.
func onDisk(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range ents {
		ids = append(ids, e.Name())
	}
	return ids
}

func ids(ms []Meta) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// What is recorded: decisions by score that reject, or pass above near x threshold.
func TestRecordable(t *testing.T) {
	for _, tc := range []struct {
		name string
		near float64
		e    events.Event
		want bool
	}{
		// a reject by score
		{"reject", 0.9, events.Event{Kind: events.EventDecision, Record: events.Record{Score: 12, Threshold: 10, Decision: events.Reject}}, true},
		// a pass above 0.9 x 10
		{"near pass", 0.9, events.Event{Kind: events.EventDecision, Record: events.Record{Score: 9.5, Threshold: 10}}, true},
		// a pass at exactly near x threshold is not above it
		{"at near", 0.5, events.Event{Kind: events.EventDecision, Record: events.Record{Score: 5, Threshold: 10}}, false},
		// a pass below near x threshold
		{"low pass", 0.9, events.Event{Kind: events.EventDecision, Record: events.Record{Score: 8, Threshold: 10}}, false},
		// near 0: rejects only, however close the pass
		{"near off", 0, events.Event{Kind: events.EventDecision, Record: events.Record{Score: 9.99, Threshold: 10}}, false},
		// a fail-safe reject has no map worth keeping
		{"fail-safe reject", 0.9, events.Event{Kind: events.EventDecision, Record: events.Record{Decision: events.Reject, Reason: events.BadFrame}}, false},
		// an inference failure neither
		{"inference failure", 0.9, events.Event{Kind: events.EventDecision, Record: events.Record{Decision: events.Alarm, Reason: events.InferFailure}}, false},
		// not a decision
		{"fail-safe event", 0.9, events.Event{Kind: events.EventFailSafe, Part: 3}, false},
	} {
		r := &Recorder{opt: Options{Near: tc.near}}
		if got := r.recordable(tc.e); got != tc.want {
			t.Errorf("%s: recordable %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A recording is a folder named by its id with the frame, the overlay and meta.json,
// nothing else left behind; the frame is the model input, losslessly.
func TestRecordingLayout(t *testing.T) {
	f := newFixture(t, Options{Near: 0.9})
	e := f.reject()
	st := f.r.Stats()
	if st.Recorded != 1 || st.Count != 1 || st.Bytes <= 0 {
		t.Fatalf("stats %+v", st)
	}
	names := onDisk(t, f.dir)
	const id = "20261202T131500.123Z-000001"
	if !slices.Equal(names, []string{id}) {
		t.Fatalf("directory holds %v, want [%s]", names, id)
	}
	inside := onDisk(t, filepath.Join(f.dir, id))
	if !slices.Equal(inside, []string{FramePNG, MetaJSON, OverlayPNG}) {
		t.Fatalf("recording holds %v", inside)
	}
	var sum int64
	for _, n := range inside {
		fi, _ := os.Stat(filepath.Join(f.dir, id, n))
		sum += fi.Size()
	}
	if sum != st.Bytes {
		t.Fatalf("files take %d bytes, stats say %d", sum, st.Bytes)
	}
	// frame.png is 8-bit RGB with the input's bytes
	b, err := os.ReadFile(filepath.Join(f.dir, id, FramePNG))
	if err != nil {
		t.Fatal(err)
	}
	if b[25] != 2 || b[24] != 8 {
		t.Fatalf("frame.png: bit depth %d, colour type %d; want 8-bit RGB", b[24], b[25])
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	for y := 0; y < f.size; y++ {
		for x := 0; x < f.size; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			i := 3 * (y*f.size + x)
			if [3]byte{byte(r >> 8), byte(g >> 8), byte(bl >> 8)} != [3]byte(f.src.frame[i:i+3]) {
				t.Fatalf("frame.png pixel (%d, %d) differs from the input", x, y)
			}
		}
	}
	var m Meta
	raw, _ := os.ReadFile(filepath.Join(f.dir, id, MetaJSON))
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	want := Meta{ID: id, Time: e.Time, Seq: 1, Part: 101, Frame: "part_b.png", Score: 12, Threshold: 10, Decision: "reject", Reason: "score",
		Generation: 3, Model: e.Record.Model, Grid: 14, Size: 224}
	got := m
	got.Map = nil
	if !got.Time.Equal(want.Time) {
		t.Fatalf("meta.json time %v, want %v", got.Time, want.Time)
	}
	got.Time, want.Time = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("meta.json\n got %+v\nwant %+v", got, want)
	}
	if !slices.Equal(m.Map, f.src.grid) {
		t.Fatal("meta.json's map is not the decision's")
	}
	if l := f.r.List(0); len(l) != 1 || l[0].ID != id || l[0].Map != nil || l[0].Bytes != st.Bytes {
		t.Fatalf("List: %+v", l)
	}
}

// The id: UTC time to the millisecond and the sequence number, at least 6 digits.
func TestID(t *testing.T) {
	r := &Recorder{}
	at := time.Date(2026, 12, 2, 14, 15, 0, 123_456_789, time.FixedZone("CET", 3600))
	for _, tc := range []struct {
		seq  uint64
		want string
	}{
		{42, "20261202T131500.123Z-000042"},                      // padded
		{0, "20261202T131500.123Z-000000"},                       // zero
		{1234567, "20261202T131500.123Z-1234567"},                // longer than the padding
		{1<<64 - 1, "20261202T131500.123Z-18446744073709551615"}, // the largest
	} {
		got := r.id(at, tc.seq)
		if got != tc.want {
			t.Errorf("seq %d: id %s, want %s", tc.seq, got, tc.want)
		}
		if _, ok := parseID(got); !ok {
			t.Errorf("%s does not parse", got)
		}
	}
}

// File names only a recording's three files, by a well-formed id of a recording on
// disk: nothing else is reachable through it.
func TestFileRefusesTraversal(t *testing.T) {
	f := newFixture(t, Options{})
	f.reject()
	id := f.r.List(1)[0].ID
	if p, err := f.r.File(id, OverlayPNG); err != nil || p != filepath.Join(f.dir, id, OverlayPNG) {
		t.Fatalf("File: %s, %v", p, err)
	}
	os.WriteFile(filepath.Join(f.dir, "secret"), []byte("x"), 0o600)
	for _, tc := range []struct{ id, name string }{
		{id, "secret"},                            // not a recording's file
		{id, "../secret"},                         // up and out
		{id, "../" + id + "/" + MetaJSON},         // a path, not a name
		{"..", MetaJSON},                          // not an id
		{id + "/..", "secret"},                    // an id with a tail
		{"../recordings/" + id, FramePNG},         // an id with a head
		{"20261202T131500.123Z-000099", FramePNG}, // well-formed but not recorded
		{"", FramePNG},                            // empty
		{strings.ToLower(id), FramePNG},           // t and z: not the pattern
	} {
		if p, err := f.r.File(tc.id, tc.name); !errors.Is(err, ErrNotFound) {
			t.Errorf("File(%q, %q) = %q, %v; want ErrNotFound", tc.id, tc.name, p, err)
		}
	}
}

// The quota keeps the newest recordings whose files fit, removing the oldest first;
// at start, the recordings already there are indexed and held to the quota too.
func TestQuotaRemovesOldestFirst(t *testing.T) {
	f := newFixture(t, Options{})
	f.reject()
	one := f.r.Stats().Bytes
	dir := f.dir
	f.r.Close()

	g := newFixture(t, Options{Dir: dir, Quota: 3*one + one/2})
	if st := g.r.Stats(); st.Count != 1 || st.Bytes != one {
		t.Fatalf("the recording already there is not indexed: %+v", st)
	}
	var all []string
	all = append(all, g.r.List(0)[0].ID)
	for i := 0; i < 9; i++ {
		g.clk.Advance(time.Second)
		g.reject()
		all = append(all, g.r.List(1)[0].ID)
	}
	st := g.r.Stats()
	if st.Count != 3 || st.Bytes > 3*one+one/2 || st.Removed != 7 || st.Recorded != 9 {
		t.Fatalf("stats %+v, want the newest 3 of 10 (each %d bytes)", st, one)
	}
	if got, want := onDisk(t, dir), all[7:]; !slices.Equal(got, want) {
		t.Fatalf("on disk %v, want the newest %v", got, want)
	}
	if got := ids(g.r.List(0)); !slices.Equal(got, []string{all[9], all[8], all[7]}) {
		t.Fatalf("List %v: not newest first", got)
	}
	g.r.Close()

	// At start, with a smaller quota: only the newest fits.
	h := newFixture(t, Options{Dir: dir, Quota: one + one/2})
	if got := onDisk(t, dir); !slices.Equal(got, all[9:]) {
		t.Fatalf("after a restart with a smaller quota: %v", got)
	}
	if st := h.r.Stats(); st.Count != 1 || st.Removed != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// The age limit removes what is older, after a recording, and at start.
func TestMaxAge(t *testing.T) {
	f := newFixture(t, Options{MaxAge: time.Hour})
	f.reject() // t0
	first := f.r.List(1)[0].ID
	f.clk.Advance(30 * time.Minute)
	f.reject() // t0+30m
	f.clk.Advance(31 * time.Minute)
	f.reject() // t0+61m: the first is over an hour old
	if got := ids(f.r.List(0)); len(got) != 2 || slices.Contains(got, first) {
		t.Fatalf("recordings %v: the first (%s) should be gone", got, first)
	}
	dir := f.dir
	f.r.Close()
	g := newFixture(t, Options{Dir: dir, MaxAge: time.Hour})
	g.clk.Advance(3 * time.Hour) // both older than an hour now
	g.r.mu.Lock()
	g.r.enforce()
	g.r.mu.Unlock()
	if got := onDisk(t, dir); len(got) != 0 {
		t.Fatalf("left %v", got)
	}
	h := newFixture(t, Options{Dir: filepath.Join(t.TempDir(), "old")})
	h.reject()
	d := h.dir
	h.r.Close()
	// At start: a clock two hours on.
	clk := newClock()
	clk.Advance(2 * time.Hour)
	r, err := New(Options{Dir: d, MaxAge: time.Hour, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if st := r.Stats(); st.Count != 0 || st.Removed != 1 {
		t.Fatalf("at start: %+v", st)
	}
}

// At most Rate recordings a second (burst max(1, Rate)); the rest are dropped and counted.
func TestRate(t *testing.T) {
	f := newFixture(t, Options{Rate: 2})
	for i := 0; i < 5; i++ {
		f.reject() // all at the same instant: the burst of 2 passes
	}
	if st := f.r.Stats(); st.Recorded != 2 || st.Dropped[DropRate] != 3 {
		t.Fatalf("stats %+v", st)
	}
	f.clk.Advance(500 * time.Millisecond) // one token back
	f.reject()
	f.reject()
	if st := f.r.Stats(); st.Recorded != 3 || st.Dropped[DropRate] != 4 {
		t.Fatalf("stats %+v", st)
	}
	f.clk.Advance(time.Hour) // the bucket holds 2 at most
	for i := 0; i < 3; i++ {
		f.reject()
	}
	if st := f.r.Stats(); st.Recorded != 5 || st.Dropped[DropRate] != 5 {
		t.Fatalf("stats %+v", st)
	}
}

// A decision whose frame and map the ring no longer holds is dropped and counted.
func TestRingMovedOn(t *testing.T) {
	f := newFixture(t, Options{})
	f.src.gone = true
	f.reject()
	if st := f.r.Stats(); st.Recorded != 0 || st.Dropped[DropRing] != 1 || st.Count != 0 {
		t.Fatalf("stats %+v", st)
	}
	f.src.gone = false
	f.size = 0 // a decision whose frame was not RGB: no frame in the ring
	f.reject()
	if st := f.r.Stats(); st.Dropped[DropRing] != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// noTmp fails if a partial recording is left in dir.
func noTmp(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) || strings.HasPrefix(e.Name(), delPrefix) {
			t.Fatalf("%s left in %s", e.Name(), dir)
		}
	}
}

// Writes that fail (a read-only directory; the directory replaced by a file, which
// stops root too; the directory removed) drop the recording, count it, log at most a
// line per 10 s, leave nothing behind, and recording resumes once the directory is
// usable again.
func TestWriteFailuresAndRecovery(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(t *testing.T, dir string) bool // false: this machine cannot break it so
		fix     func(t *testing.T, dir string)
	}{
		// chmod 0o555: refuses writes, except to root (then skipped: the next rows fail for root too)
		{"read-only", func(t *testing.T, dir string) bool {
			if err := os.Chmod(dir, 0o555); err != nil {
				t.Fatal(err)
			}
			probe := filepath.Join(dir, "probe")
			if err := os.WriteFile(probe, nil, 0o600); err == nil {
				os.Remove(probe)
				os.Chmod(dir, 0o750)
				return false
			}
			return true
		}, func(t *testing.T, dir string) { os.Chmod(dir, 0o750) }},
		// a regular file where the directory was
		{"file instead of directory", func(t *testing.T, dir string) bool {
			os.Rename(dir, dir+".away")
			if err := os.WriteFile(dir, []byte("not a directory"), 0o600); err != nil {
				t.Fatal(err)
			}
			return true
		}, func(t *testing.T, dir string) {
			os.Remove(dir)
			os.Rename(dir+".away", dir)
		}},
		// the directory and the folder above it vanish (the recorder makes them again)
		{"vanished", func(t *testing.T, dir string) bool {
			os.RemoveAll(filepath.Dir(dir))
			if err := os.WriteFile(filepath.Dir(dir), nil, 0o600); err != nil { // and cannot be made again yet
				t.Fatal(err)
			}
			return true
		}, func(t *testing.T, dir string) { os.Remove(filepath.Dir(dir)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Options{Dir: filepath.Join(t.TempDir(), "a", "recordings")})
			f.reject()
			if !tc.breakIt(t, f.dir) {
				t.Skip("writes to a 0o555 directory succeed here (root): the other rows cover failures for root")
			}
			t.Cleanup(func() { tc.fix(t, f.dir) })
			for i := 0; i < 5; i++ {
				f.clk.Advance(time.Second)
				f.reject()
			}
			st := f.r.Stats()
			if st.Dropped[DropWrite] != 5 || st.Recorded != 1 || st.LastError == "" || !st.LastErrorAt.Equal(f.clk.Now()) {
				t.Fatalf("stats %+v", st)
			}
			if n := len(f.log.Lines("recording dropped")); n != 1 {
				t.Fatalf("%d log lines for 5 failures in 5 s, want 1", n)
			}
			f.clk.Advance(10 * time.Second)
			f.reject()
			lines := f.log.Lines("recording dropped")
			if len(lines) != 2 || !strings.Contains(lines[1], "not_logged=4") {
				t.Fatalf("log: %q", lines)
			}
			tc.fix(t, f.dir)
			f.clk.Advance(time.Second)
			f.reject()
			st = f.r.Stats()
			if st.Recorded != 2 || st.Dropped[DropWrite] != 6 {
				t.Fatalf("after the fix: %+v", st)
			}
			if len(f.log.Lines("writing again")) != 1 {
				t.Fatal("no line saying recording resumed")
			}
			noTmp(t, f.dir)
			// the index is the directory's, however much of it the failure took
			want := ids(f.r.List(0))
			slices.Reverse(want)
			if got := onDisk(t, f.dir); !slices.Equal(got, want) {
				t.Fatalf("on disk %v, index %v", got, want)
			}
		})
	}
}

// A real failing write: the overlay's file is /dev/full, whose writes fail with
// ENOSPC as on a full disk. The recording is dropped, its partial folder removed.
func TestFullDisk(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full here")
	}
	f := newFixture(t, Options{})
	f.r.create = func(name string) (*os.File, error) {
		if filepath.Base(name) == OverlayPNG {
			return os.OpenFile("/dev/full", os.O_WRONLY, 0)
		}
		return createFile(name)
	}
	f.reject()
	st := f.r.Stats()
	if st.Dropped[DropWrite] != 1 || st.Recorded != 0 || !strings.Contains(st.LastError, "no space left on device") {
		t.Fatalf("stats %+v", st)
	}
	noTmp(t, f.dir)
	if got := onDisk(t, f.dir); len(got) != 0 {
		t.Fatalf("left %v", got)
	}
	f.r.create = createFile
	f.reject()
	if st := f.r.Stats(); st.Recorded != 1 || st.Count != 1 {
		t.Fatalf("after space is back: %+v", st)
	}
}

// An unusable directory at start is not fatal: New says so (ErrUnusable) and returns a
// recorder that records once the directory can be made.
func TestUnusableAtStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "recordings")
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	r, err := New(Options{Dir: dir, Now: clk.Now, Bus: events.NewBus()})
	if !errors.Is(err, ErrUnusable) || r == nil {
		t.Fatalf("New: %v, %v; want a recorder and ErrUnusable", r, err)
	}
	src := newFakeFrames(224, 14)
	r.src = src
	f := &fixture{r: r, clk: clk, src: src, size: 224, log: &testlib.SyncBuffer{}}
	f.reject()
	if st := r.Stats(); st.Dropped[DropWrite] != 1 {
		t.Fatalf("stats %+v", st)
	}
	os.Remove(dir)
	f.reject()
	if st := r.Stats(); st.Recorded != 1 {
		t.Fatalf("stats %+v", st)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

// Bad options are refused; Close is safe before Start, twice, and on nil; a closed
// recorder does not start.
func TestOptionsAndLifecycle(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  Options
	}{
		{"no dir", Options{}},                                   // nowhere to record
		{"negative quota", Options{Dir: "x", Quota: -1}},        // a quota is bytes
		{"negative age", Options{Dir: "x", MaxAge: -time.Hour}}, // an age is positive
		{"NaN near", Options{Dir: "x", Near: nanf()}},           // a fraction of the threshold
		{"negative rate", Options{Dir: "x", Rate: -1}},          // per second
	} {
		if r, err := New(tc.opt); !errors.Is(err, ErrOptions) || r != nil {
			t.Errorf("%s: %v, %v; want ErrOptions", tc.name, r, err)
		}
	}
	var nilRec *Recorder
	if err := nilRec.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := New(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); !errors.Is(err, ErrOptions) {
		t.Fatalf("Start without a bus: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
	r2, _ := New(Options{Dir: t.TempDir(), Bus: events.NewBus()})
	if err := r2.Start(); err != nil {
		t.Fatal(err)
	}
	if err := r2.Start(); err == nil {
		t.Fatal("started twice")
	}
	r2.Close()
	r2.Close()
}

func nanf() float64 { var z float64; return z / z }

// Feedback: labels, kinds and ids are checked; a second label moves the copy.
func TestLabel(t *testing.T) {
	ds := filepath.Join(t.TempDir(), "dataset")
	f := newFixture(t, Options{Dataset: ds})
	f.reject()
	id := f.r.List(1)[0].ID
	if fi, err := os.Stat(filepath.Join(ds, "train", "good")); err != nil || !fi.IsDir() {
		t.Fatalf("New did not make the dataset's train/good: %v", err)
	}
	for _, tc := range []struct {
		name string
		id   string
		l    Label
		kind string
		want error
	}{
		{"unknown id", "20261202T131500.123Z-000099", Defect, "", ErrNotFound}, // well-formed, not recorded
		{"traversal", "../" + id, Defect, "", ErrNotFound},                     // not an id
		{"upper case kind", id, Defect, "Scratch", ErrBadKind},                 // lowercase only
		{"kind with a slash", id, Defect, "a/b", ErrBadKind},                   // a path
		{"kind up", id, Defect, "..", ErrBadKind},                              // a path
		{"kind good", id, Defect, "good", ErrBadKind},                          // test/good is for good parts
		{"long kind", id, Defect, strings.Repeat("a", 33), ErrBadKind},         // over 32
		{"no label", id, Unlabelled, "", ErrBadLabel},                          // nothing to file
		{"bad label", id, Label(7), "", ErrBadLabel},                           // not a label
	} {
		if dest, err := f.r.Label(tc.id, tc.l, tc.kind); !errors.Is(err, tc.want) {
			t.Errorf("%s: %q, %v; want %v", tc.name, dest, err, tc.want)
		}
	}
	dest, err := f.r.Label(id, Defect, "")
	if err != nil || dest != filepath.Join(ds, "test", "defect", id+".png") {
		t.Fatalf("Label: %s, %v", dest, err)
	}
	frame, _ := os.ReadFile(filepath.Join(f.dir, id, FramePNG))
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, frame) {
		t.Fatal("the dataset's copy is not frame.png")
	}
	mask := filepath.Join(ds, "ground_truth", "defect", id+"_mask.png")
	if _, err := os.Stat(mask); err != nil {
		t.Fatal(err)
	}
	m := f.r.List(1)[0]
	if m.Label != Defect || m.Kind != "defect" || m.DatasetFile != filepath.Join("test", "defect", id+".png") {
		t.Fatalf("List after Label: %+v", m)
	}
	// meta.json says so too, and keeps the map
	onDiskMeta, err := readMeta(filepath.Join(f.dir, id, MetaJSON))
	if err != nil || onDiskMeta.Label != Defect || onDiskMeta.Kind != "defect" || len(onDiskMeta.Map) != 14*14 {
		t.Fatalf("meta.json: %+v, %v", onDiskMeta, err)
	}
	// Relabel: the copy moves, the mask and the emptied kind folders go.
	dest2, err := f.r.Label(id, FalseReject, "ignored")
	if err != nil || dest2 != filepath.Join(ds, "train", "good", id+".png") {
		t.Fatalf("relabel: %s, %v", dest2, err)
	}
	for _, gone := range []string{dest, mask, filepath.Dir(dest), filepath.Dir(mask)} {
		if _, err := os.Stat(gone); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after relabelling", gone)
		}
	}
	if m, _ := readMeta(filepath.Join(f.dir, id, MetaJSON)); m.Label != FalseReject || m.Kind != "" || m.MaskFile != "" {
		t.Fatalf("meta.json after relabel: %+v", m)
	}
	// The index's byte count follows meta.json's rewrites.
	var sum int64
	for _, n := range []string{FramePNG, OverlayPNG, MetaJSON} {
		fi, _ := os.Stat(filepath.Join(f.dir, id, n))
		sum += fi.Size()
	}
	if st := f.r.Stats(); st.Bytes != sum || st.Labelled != 2 {
		t.Fatalf("stats %+v, files %d bytes", st, sum)
	}
	// Without a dataset, no feedback.
	g := newFixture(t, Options{})
	g.reject()
	if _, err := g.r.Label(g.r.List(1)[0].ID, Defect, ""); !errors.Is(err, ErrNoDataset) {
		t.Fatalf("%v, want ErrNoDataset", err)
	}
}

// Label names round-trip through text (JSON).
func TestLabelText(t *testing.T) {
	for _, l := range []Label{Unlabelled, FalseReject, Defect} {
		b, err := l.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Label
		if err := back.UnmarshalText(b); err != nil || back != l || l.String() != string(b) {
			t.Fatalf("%v: %s -> %v, %v", l, b, back, err)
		}
	}
	if _, err := ParseLabel("good"); !errors.Is(err, ErrBadLabel) {
		t.Fatal(err)
	}
	if DropBus.String() != "bus" || DropReason(9).String() != "drop(9)" || Label(9).String() != "label(9)" {
		t.Fatal("String")
	}
}

// The steady-state record path (a recording written and, over the quota, the oldest
// removed) allocates a bounded amount, not growing with the number of recordings.
func TestRecordAllocations(t *testing.T) {
	f := newFixture(t, Options{})
	f.reject()
	f.r.opt.Quota = 5 * f.r.Stats().Bytes
	for i := 0; i < 10; i++ {
		f.clk.Advance(time.Millisecond)
		f.reject()
	}
	n := testing.AllocsPerRun(50, func() {
		f.clk.Advance(time.Millisecond)
		f.reject()
	})
	if st := f.r.Stats(); st.Count > 5 || st.Dropped[DropWrite] != 0 {
		t.Fatalf("stats %+v", st)
	}
	t.Logf("%.0f allocations per recording", n)
	if n > 150 {
		t.Fatalf("%.0f allocations per recording", n)
	}
}

func BenchmarkRecord(b *testing.B) {
	f := newFixture(b, Options{})
	f.reject()
	f.r.opt.Quota = 50 * f.r.Stats().Bytes
	b.ReportAllocs()
	for b.Loop() {
		f.clk.Advance(time.Millisecond)
		f.reject()
	}
	if st := f.r.Stats(); st.Dropped[DropWrite] != 0 {
		b.Fatalf("stats %+v", st)
	}
	per := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(per*1e3, "ms/recording")
	b.ReportMetric(1/per, "recordings/s")
	b.ReportMetric(float64(f.r.Stats().Bytes)/float64(f.r.Stats().Count), "bytes/recording")
}
