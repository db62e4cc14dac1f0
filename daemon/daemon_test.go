package daemon_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adtrd/adtrd/app"
	"github.com/adtrd/adtrd/capture/spec"
	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/internal/demoline"

	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/engine"
	etflite "github.com/adtrd/adtrd/engine/tflite"
	"github.com/adtrd/adtrd/gpio"
	"github.com/adtrd/adtrd/gpio/linetest"
	"github.com/adtrd/adtrd/internal/testlib"
	"github.com/adtrd/adtrd/model"
	"github.com/adtrd/adtrd/score"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func demoModel(t testing.TB) config.Model {
	return config.Model{Path: testlib.Demo("adtr.tflite"), Library: testlib.TFLiteLibrary(t), Threads: 2}
}

func openEngine(t testing.TB) *etflite.Engine {
	t.Helper()
	e, err := etflite.Open(demoModel(t), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

type rig struct {
	clk  *linetest.Clock // nil: the real clock
	p    *daemon.Pipeline
	sim  *gpio.Sim
	line *gpio.Tracker
	mu   sync.Mutex
	recs []events.Record
	stop func() // ends the record collection (run calls it)
}

// newRig runs the pipeline into a tracker on simulated pins (there is no GPIO chip
// here). With delay > 0 the tracker runs on the real clock with that reject delay;
// with 0 it runs on a manual clock that stands still until the run ends, so no part
// can be late however slow this machine is, and run() then lets every part go by.
// rigSet is what a test varies: the generation's threshold and fail-safe, the queue.
type rigSet struct {
	Log       *slog.Logger // nil: quiet
	Threshold float64
	FailSafe  gpio.FailSafe
	Queue     int
	Labels    config.Labels
	InFlight  int // the tracking FIFO; 0: 1024
}

func newRig(t testing.TB, eng engine.Engine, meta *model.Metadata, src daemon.Source, set rigSet, delay time.Duration) *rig {
	t.Helper()
	sc, err := score.New(meta.ScoreParams())
	if err != nil {
		t.Fatal(err)
	}
	sim, _ := gpio.NewSim("", quiet)
	r := &rig{sim: sim}
	var clock gpio.Clock = gpio.Real
	if delay == 0 {
		r.clk = linetest.NewClock(time.Now())
		clock, delay = r.clk, time.Second
	}
	tr, err := gpio.New(gpio.Options{
		Clock:  clock,
		Reject: gpio.Output{Name: "reject", Pin: sim.Pin("reject")}, Alarm: gpio.Output{Name: "alarm", Pin: sim.Pin("alarm")},
		Ready: gpio.Output{Name: "ready", Pin: sim.Pin("ready")},
		Delay: delay, Pulse: time.Millisecond, InFlight: cmp.Or(set.InFlight, 1024), FailSafe: set.FailSafe, Log: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	tr.Start()
	t.Cleanup(func() { tr.Close() })
	r.line = tr
	if set.Threshold == 0 {
		set.Threshold = meta.Threshold
	}
	if set.Queue == 0 {
		set.Queue = 2
	}
	gen := &daemon.Generation{N: 1, Engine: eng, Scorer: sc, Threshold: set.Threshold, FailSafe: set.FailSafe, ModelSHA: meta.SHA256}
	gen.Config.Capture.Replay.Labels = set.Labels
	log := quiet
	if set.Log != nil {
		log = set.Log
	}
	r.p, err = daemon.New(daemon.Settings{Queue: set.Queue}, gen, src, tr, log)
	if err != nil {
		t.Fatal(err)
	}
	// Records come off the event bus, as any subscriber gets them (1024 events
	// buffered; the collector drains them as they come).
	r.stop = collect(t, r.p.Events().Subscribe(1024), func(e events.Event) {
		if e.Kind == events.EventDecision {
			r.mu.Lock()
			r.recs = append(r.recs, e.Record)
			r.mu.Unlock()
		}
	})
	return r
}

func (r *rig) run(t testing.TB) daemon.Summary {
	t.Helper()
	if _, err := r.p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.stop()
	r.flush(t)
	return r.p.Summary() // escapes and unpulsed rejects are counted at the ejector
}

// flush lets every part in flight go by (on the manual clock: at once).
func (r *rig) flush(t testing.TB) {
	t.Helper()
	if r.clk != nil {
		linetest.Step(r.clk, r.line, time.Now().Add(time.Hour))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.line.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// edges lists one simulated output's levels after its initial inactive one.
func (r *rig) edges(pin string) []bool {
	var out []bool
	for _, e := range r.sim.Edges() {
		if e.Pin == pin {
			out = append(out, bool(e.Level))
		}
	}
	if len(out) > 0 {
		out = out[1:]
	}
	return out
}

func replay(t testing.TB, path string, fps float64) *capture.Replay {
	src, err := capture.NewReplay(capture.ReplayOptions{Path: path, FPS: fps, Size: capture.Size{W: 224, H: 224}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// The whole pipeline on the demo frames gives the toolkit's scores (within one
// quantisation step of the map) and decisions, and pulses once per reject.
func TestDemoMatchesGolden(t *testing.T) {
	eng := openEngine(t)
	g := testlib.LoadGolden(t)
	r := newRig(t, eng, eng.Meta, replay(t, testlib.Demo("frames"), 0), rigSet{}, 0)
	sum := r.run(t)
	if int(sum.Frames) != len(g.Frames) || len(r.recs) != len(g.Frames) {
		t.Fatalf("decided %d frames, golden has %d", sum.Frames, len(g.Frames))
	}
	rejects := 0
	for i, f := range g.Frames {
		rec := r.recs[i]
		if filepath.Base(rec.Name) != f.File {
			t.Fatalf("frame %d is %s, want %s", i, rec.Name, f.File)
		}
		if math.Abs(rec.Score-f.Score) > g.Output.Scale {
			t.Errorf("%s: score %.5f, golden %.5f (more than one step %.5f apart)", f.File, rec.Score, f.Score, g.Output.Scale)
		}
		if (rec.Decision == events.Reject) != f.Reject {
			t.Errorf("%s: decision %v, golden reject=%v", f.File, rec.Decision, f.Reject)
		}
		if f.Reject {
			rejects++
		}
	}
	if s := r.line.Stats(); s.Pulses != uint64(rejects) || s.Passes != uint64(len(g.Frames)-rejects) || s.FailSafes() != 0 || s.LateDecisions != 0 {
		t.Fatalf("tracker %+v, want %d pulses", s, rejects)
	}
	// On the wire, pulses of parts stamped closer together than the pulse width merge.
	edges := r.edges("reject")
	if len(edges) == 0 || len(edges)%2 != 0 || len(edges) > 2*rejects {
		t.Fatalf("%d edges for %d rejects", len(edges), rejects)
	}
	for i, e := range edges {
		if e != (i%2 == 0) {
			t.Fatalf("edge %d: level %v", i, e)
		}
	}
	if _, err := r.p.Run(context.Background()); err == nil {
		t.Fatal("a second Run of the same pipeline was accepted")
	}
	// ready came on with the first decided frame and went off at the end
	if ready := r.edges("ready"); len(ready) != 2 || !ready[0] || ready[1] {
		t.Fatalf("ready edges %v", ready)
	}
}

// An unreadable frame is counted and decided by the fail-safe rule, and the frames
// after it are still scored.
func TestBadFrameIsDecidedByFailSafe(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fs     gpio.FailSafe
		want   events.Decision
		pulses int // the hole is always rejected; the bad frame by the fail-safe
		alarm  bool
	}{
		{"reject by default", gpio.FailReject, events.Reject, 2, false},
		{"pass when configured", gpio.FailPass, events.Pass, 1, false},
		{"alarm when configured", gpio.FailAlarm, events.Alarm, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, n := range []string{"000_good.png", "005_hole.png"} {
				os.Symlink(testlib.Demo("frames", n), filepath.Join(dir, n))
			}
			os.WriteFile(filepath.Join(dir, "001_good.png"), []byte("\x89PNG\r\n\x1a\ntruncated"), 0o644)
			eng := openEngine(t)
			r := newRig(t, eng, eng.Meta, replay(t, dir, 0), rigSet{FailSafe: tc.fs}, 0)
			sum := r.run(t)
			if sum.Frames != 3 || sum.BadFrames != 1 {
				t.Fatalf("summary %+v", sum)
			}
			bad := r.recs[1]
			if bad.Reason != events.BadFrame || bad.Decision != tc.want || !errors.Is(bad.Err, capture.ErrFrame) {
				t.Fatalf("bad frame record %+v", bad)
			}
			if !strings.Contains(bad.Err.Error(), "001_good.png: not a readable image") {
				t.Fatalf("error does not name the frame: %v", bad.Err)
			}
			if r.recs[2].Reason != events.ByScore || r.recs[2].Decision != events.Reject {
				t.Fatalf("frame after the bad one: %+v", r.recs[2])
			}
			if got := r.line.Stats().Pulses; got != uint64(tc.pulses) {
				t.Fatalf("%d reject pulses, want %d", got, tc.pulses)
			}
			if s := r.line.Stats(); s.FailSafe[gpio.CauseBadFrame] != 1 || r.line.Alarm() != tc.alarm {
				t.Fatalf("tracker %+v, alarm %v", s, r.line.Alarm())
			}
		})
	}
}

// A model slower than the reject delay: every decision comes after its part has
// passed the ejector, so every part falls to the fail-safe (reject) on time, and the
// late decisions change nothing.
func TestLateDecisionsFallToFailSafe(t *testing.T) {
	meta, err := model.Load(testlib.Demo("adtr.tflite.json"))
	if err != nil {
		t.Fatal(err)
	}
	eng := &slowEngine{fakeEngine: newFake(meta), d: 30 * time.Millisecond}
	src := replay(t, testlib.Demo("frames"), 0)
	r := newRig(t, eng, meta, src, rigSet{Queue: 1}, 5*time.Millisecond)
	sum := r.run(t)
	s := r.line.Stats()
	if s.FailSafe[gpio.CauseLate] != sum.Frames || s.LateDecisions != sum.Frames || s.Pulses != sum.Frames {
		t.Fatalf("frames %d, tracker %+v", sum.Frames, s)
	}
}

// slowEngine stands in for a model slower than the camera.
type slowEngine struct {
	fakeEngine
	d time.Duration
}

func (s *slowEngine) Invoke() error { time.Sleep(s.d); return nil }

func TestBadModelFilesAreClearErrors(t *testing.T) {
	dir := t.TempDir()
	graph, _ := os.ReadFile(testlib.Demo("adtr.tflite"))
	meta, _ := os.ReadFile(testlib.Demo("adtr.tflite.json"))
	put := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	var m map[string]any
	json.Unmarshal(meta, &m)
	// A metadata consistent in itself (stride 32, output 1x7x7) that is another graph's.
	m["grid"] = []int{7, 7}
	m["stride"] = 32
	m["output"].(map[string]any)["shape"] = []int{1, 7, 7}
	m["model"].(map[string]any)["stride"] = 32
	wrongGrid, _ := json.Marshal(m)
	tests := []struct {
		name, model, meta string
		want              string
		pin               string
	}{
		// the config pins another model's sha256
		{"pinned", put("p.tflite", graph), put("p.tflite.json", meta), "is not the pinned model.sha256 000000000000", strings.Repeat("0", 64)},
		// the model is cut short: its hash no longer matches its metadata
		{"truncated", put("t.tflite", graph[:1000]), put("t.tflite.json", meta), "sha256", ""},
		// metadata missing beside the model
		{"no metadata", put("n.tflite", graph), "", "n.tflite.json", ""},
		// metadata that is not JSON
		{"bad json", put("j.tflite", graph), put("j.tflite.json", []byte("{")), "malformed JSON", ""},
		// metadata that disagrees with the tensors
		{"grid mismatch", put("g.tflite", graph), put("g.tflite.json", wrongGrid), "output tensor is int8[1 14 14], its metadata " + filepath.Join(dir, "g.tflite.json") + " says int8[1 7 7]", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := demoModel(t)
			c.Path, c.SHA256 = tc.model, tc.pin
			e, err := etflite.Open(c, quiet)
			if err == nil {
				e.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line with %q", err, tc.want)
			}
		})
	}
}

// A graph exported before exact int8 rounding still runs, with one warning naming it;
// the demo (exact) gets none. Table rows: the metadata's quantisation.rounding.
func TestModelWithoutExactRoundingWarns(t *testing.T) {
	dir := t.TempDir()
	graph, _ := os.ReadFile(testlib.Demo("adtr.tflite"))
	meta, _ := os.ReadFile(testlib.Demo("adtr.tflite.json"))
	for _, tc := range []struct {
		name     string
		rounding any // nil: the key removed
		warn     bool
	}{
		{"exact", "exact", false},   // what the toolkit writes now
		{"older export", nil, true}, // no rounding key at all
		{"other value", "float", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			json.Unmarshal(meta, &m)
			q := m["quantisation"].(map[string]any)
			if tc.rounding == nil {
				delete(q, "rounding")
			} else {
				q["rounding"] = tc.rounding
			}
			b, _ := json.Marshal(m)
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".tflite")
			os.WriteFile(path, graph, 0o644)
			os.WriteFile(path+".json", b, 0o644)
			var buf bytes.Buffer
			c := demoModel(t)
			c.Path = path
			e, err := etflite.Open(c, slog.New(slog.NewTextHandler(&buf, nil)))
			if err != nil {
				t.Fatal(err)
			}
			e.Close()
			got := strings.Contains(buf.String(), "without exact int8 rounding") && strings.Contains(buf.String(), path)
			if got != tc.warn {
				t.Fatalf("warned %v, want %v; log:\n%s", got, tc.warn, buf.String())
			}
		})
	}
}

// prePost is the per-frame work around Invoke: the frame into the input tensor, the
// map through the scorer. It must not allocate.
func TestPrePostProcessingDoesNotAllocate(t *testing.T) {
	eng := openEngine(t)
	sc, _ := score.New(eng.Meta.ScoreParams())
	px, err := capture.LoadRGB(testlib.Demo("frames", "000_good.png"), capture.Size{W: 224, H: 224}, capture.FitResize)
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(10, func() {
		copy(eng.Input(), px)
		sc.ScoreInt8(eng.Output().Int8)
	}); n != 0 {
		t.Fatalf("%v allocations per frame", n)
	}
}

func BenchmarkPrePost(b *testing.B) {
	eng := openEngine(b)
	sc, _ := score.New(eng.Meta.ScoreParams())
	px, _ := capture.LoadRGB(testlib.Demo("frames", "000_good.png"), capture.Size{W: 224, H: 224}, capture.FitResize)
	b.ReportAllocs()
	for b.Loop() {
		copy(eng.Input(), px)
		sc.ScoreInt8(eng.Output().Int8)
	}
}

// BenchmarkPipeline: whole-pipeline frames/s on the demo model, to compare with
// tflite's BenchmarkInvoke at the same thread count.
func BenchmarkPipeline(b *testing.B) {
	c := demoModel(b)
	e, err := etflite.Open(c, quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	src, err := capture.NewReplay(capture.ReplayOptions{Path: testlib.Demo("frames"), Loop: true, Size: capture.Size{W: 224, H: 224}})
	if err != nil {
		b.Fatal(err)
	}
	// One pass first, outside the timing: the replay decodes each file when it is
	// first played, and a camera's frames come decoded; what is timed is the frame path.
	for range src.Len() {
		if _, err := src.Next(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	r := newRig(b, e, e.Meta, demoline.Limited(src, b.N), rigSet{}, 0)
	r.stop() // the rig's record collector grows a slice: not the frame path's allocation
	b.ReportAllocs()
	b.ResetTimer()
	if _, err := r.p.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	r.flush(b) // the parts still in flight, outside the timing
}

// With a part-present trigger, each trigger edge stamps a part and capture takes the
// next frame for it; the reject for the bad one comes at its trigger time + delay.
// The trigger is a gpiotest pin and the clock a manual one: no GPIO chip here.
func TestTriggerTakesTheNextFrame(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"000_good.png", "005_hole.png", "006_good.png"} {
		os.Symlink(testlib.Demo("frames", n), filepath.Join(dir, n))
	}
	eng := openEngine(t)
	sc, _ := score.New(eng.Meta.ScoreParams())
	t0 := time.Now()
	clk := linetest.NewClock(t0)
	reject := linetest.NewRecorder("reject", clk)
	trig := linetest.NewInput("trigger")
	tr, err := gpio.New(gpio.Options{
		Reject: gpio.Output{Name: "reject", Pin: reject}, Trigger: gpio.Input{Name: "trigger", Pin: trig},
		Delay: time.Second, Pulse: 50 * time.Millisecond, Debounce: time.Millisecond, InFlight: 8, Clock: clk, Log: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	tr.Start()
	gen := &daemon.Generation{N: 1, Engine: eng, Scorer: sc, Threshold: eng.Meta.Threshold, ModelSHA: eng.SHA256}
	p, err := daemon.New(daemon.Settings{Queue: 2}, gen, replay(t, dir, 0), tr, quiet)
	if err != nil {
		t.Fatal(err)
	}
	recs := make(chan events.Record, 8)
	collect(t, p.Events().Subscribe(8), func(e events.Event) {
		if e.Kind == events.EventDecision {
			recs <- e.Record
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := p.Run(ctx); done <- err }()
	var got []events.Record
	for i := 0; i < 3; i++ {
		clk.Set(t0.Add(time.Duration(i) * 200 * time.Millisecond))
		trig.EdgesChan <- true // the part arrives
		trig.EdgesChan <- false
		select {
		case r := <-recs:
			got = append(got, r)
		case <-time.After(10 * time.Second):
			t.Fatal("no frame taken for the trigger")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	linetest.Step(clk, tr, t0.Add(2*time.Second))
	for i, r := range got {
		if r.Part != uint64(i+1) || filepath.Base(r.Name) != []string{"000_good.png", "005_hole.png", "006_good.png"}[i] {
			t.Fatalf("record %d: part %d frame %s", i, r.Part, r.Name)
		}
	}
	if got[1].Decision != events.Reject || got[0].Decision != events.Pass || got[2].Decision != events.Pass {
		t.Fatalf("decisions %v %v %v", got[0].Decision, got[1].Decision, got[2].Decision)
	}
	ps := reject.Pulses(false)
	want := t0.Add(200*time.Millisecond + time.Second) // part 2's trigger + delay
	if len(ps) != 1 || !ps[0].On.Equal(want) || !ps[0].Off.Equal(want.Add(50*time.Millisecond)) {
		t.Fatalf("pulses %+v, want one at %v", ps, want.Sub(t0))
	}
}

// countedCamera ends a camera source after n frames.
type countedCamera struct {
	*capture.Camera
	n int
}

func (c *countedCamera) Next(ctx context.Context) (capture.Frame, error) {
	if c.n == 0 {
		return capture.Frame{}, capture.ErrEOF
	}
	f, err := c.Camera.Next(ctx)
	if err == nil {
		c.n--
	}
	return f, err
}

// BenchmarkPipelineCamera: the whole pipeline fed by a GStreamer camera (videotestsrc
// at 640x480, resized to 224x224 by adtrd) against the bare Invoke loop timed in the
// same run: frames/s decided, bare frames/s and their ratio. The camera's child shares
// this machine's 2 cores with inference; frames the pipeline cannot take are dropped
// (a camera does not wait), so decided frames/s is the measure.
func BenchmarkPipelineCamera(b *testing.B) {
	testlib.Tool(b, "gst-launch-1.0")
	// threads=1 leaves a core to the camera, as a Jetson's 6 to 12 cores do; threads=2
	// gives this machine's both cores to inference, so the camera's child and resize
	// take their time from it.
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) { benchPipelineCamera(b, threads) })
	}
}

func benchPipelineCamera(b *testing.B, threads int) {
	c := demoModel(b)
	c.Threads = threads
	e, err := etflite.Open(c, quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	for range 5 { // warm-up
		if err := e.Invoke(); err != nil {
			b.Fatal(err)
		}
	}
	bare := time.Now()
	const bareN = 50
	for range bareN {
		if err := e.Invoke(); err != nil {
			b.Fatal(err)
		}
	}
	bareFPS := bareN / time.Since(bare).Seconds()
	// The camera runs live at 10 % above the bare rate, as a line camera runs at the
	// part rate: the pipeline is then bound by inference, and the camera's own cost
	// (the child's conversion, the pipe, adtrd's resize) is what the ratio shows.
	rate := int(math.Ceil(1.1 * bareFPS))
	cam, err := capture.NewCamera(capture.CameraOptions{
		Spec: spec.CameraSpec{URI: fmt.Sprintf("gst://videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=480,framerate=%d/1", rate), Width: 640, Height: 480},
		Size: capture.Size{W: 224, H: 224},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer cam.Close()
	for range 5 { // warm-up: the child started, its first frames, the resize's buffers
		f, err := cam.Next(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		f.Release()
	}
	r := newRig(b, e, e.Meta, &countedCamera{cam, b.N}, rigSet{}, 0)
	r.stop()
	b.ReportAllocs()
	b.ResetTimer()
	if _, err := r.p.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	fps := float64(r.p.Stats.Frames.Load()) / b.Elapsed().Seconds()
	b.ReportMetric(fps, "decided-frames/s")
	b.ReportMetric(bareFPS, "bare-frames/s")
	b.ReportMetric(fps/bareFPS, "ratio")
	r.flush(b)
}

// tfliteBuild builds generations on the TFLite engine, as the binary does.
func tfliteBuild() daemon.Builder { return app.Build(etflite.Factories()) }
