package record

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"image/png"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/engine"
	"github.com/adtrd/adtrd/evaluate"
	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/gpio"
	"github.com/adtrd/adtrd/gpio/linetest"
	"github.com/adtrd/adtrd/internal/testlib"
	"github.com/adtrd/adtrd/model"
	"github.com/adtrd/adtrd/score"
)

var quiet = slog.New(slog.DiscardHandler)

// planEngine stands in for TFLite: the demo model's tensors, and for the n-th
// inference the map plan(n) writes (int8, the demo's quantisation).
type planEngine struct {
	in   []byte
	out  []int8
	meta *model.Metadata
	plan func(n int, out []int8)
	n    int
}

func (e *planEngine) Input() []byte         { return e.in }
func (e *planEngine) Output() engine.Output { return engine.Output{Int8: e.out} }
func (e *planEngine) Close() error          { return nil }
func (e *planEngine) Invoke() error {
	e.plan(e.n, e.out)
	e.n++
	return nil
}
func (e *planEngine) Tensors() (in, out model.TensorInfo) {
	m := e.meta
	return model.TensorInfo{Type: m.Input.DType, Shape: []int{1, m.Input.Height, m.Input.Width, 3}},
		model.TensorInfo{Type: m.Output.DType, Shape: []int{1, m.Grid[0], m.Grid[1]}, Scale: m.Output.Scale, ZeroPoint: m.Output.ZeroPoint}
}

// The plan of the demo run, by frame (of 16): a reject with a hot spot, a pass
// scoring 9.5 (above 0.9 x the threshold 10), a pass at 4, and a reject with its hot
// spot elsewhere.
const threshold = 10.0

func demoPlan(meta *model.Metadata) func(n int, out []int8) {
	q := func(v float64) int8 { return int8(v/meta.Output.Scale + float64(meta.Output.ZeroPoint)) }
	g := meta.Grid[0]
	return func(n int, out []int8) {
		switch n % 4 {
		case 0, 3:
			for i := range out {
				out[i] = q(3)
			}
			cx, cy := 3+n%5, 8-n%4
			if n%4 == 3 {
				cx, cy = 10, 2
			}
			for y := cy - 1; y <= cy+1; y++ {
				for x := cx - 1; x <= cx+1; x++ {
					out[y*g+x] = q(25)
				}
			}
		case 1:
			for i := range out {
				out[i] = q(9.5)
			}
		case 2:
			for i := range out {
				out[i] = q(4)
			}
		}
	}
}

// runDemo runs a real pipeline over the demo frames (unpaced replay, a tracker on
// simulated pins and a manual clock) with a plan engine, publishing on bus, and
// returns every event it published.
func runDemo(t testing.TB, bus *events.Bus) []events.Event {
	t.Helper()
	meta, err := model.Load(testlib.Demo("adtr.tflite.json"))
	if err != nil {
		t.Fatal(err)
	}
	eng := &planEngine{in: make([]byte, meta.Input.Width*meta.Input.Height*3), out: make([]int8, meta.Grid[0]*meta.Grid[1]), meta: meta, plan: demoPlan(meta)}
	sc, err := score.New(meta.ScoreParams())
	if err != nil {
		t.Fatal(err)
	}
	sim, _ := gpio.NewSim("", quiet)
	tr, err := gpio.New(gpio.Options{
		Clock:  linetest.NewClock(time.Now()),
		Reject: gpio.Output{Name: "reject", Pin: sim.Pin("reject")}, Alarm: gpio.Output{Name: "alarm", Pin: sim.Pin("alarm")},
		Ready: gpio.Output{Name: "ready", Pin: sim.Pin("ready")},
		Delay: time.Second, Pulse: time.Millisecond, InFlight: 1024, Log: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	tr.Start()
	defer tr.Close()
	src, err := capture.NewReplay(capture.ReplayOptions{Path: testlib.Demo("frames"), Size: capture.Size{W: 224, H: 224}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	gen := &daemon.Generation{N: 1, Engine: eng, Scorer: sc, Threshold: threshold, ModelSHA: meta.SHA256}
	p, err := daemon.New(daemon.Settings{Queue: 2, Events: bus}, gen, src, tr, quiet)
	if err != nil {
		t.Fatal(err)
	}
	all := bus.Subscribe(1024)
	defer all.Close()
	if _, err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var evs []events.Event
	for len(all.C()) > 0 { // Publish is synchronous: everything is in
		evs = append(evs, <-all.C())
	}
	return evs
}

// flush waits until the recorder has handled every event already published.
func (r *Recorder) flush() {
	reply := make(chan struct{})
	r.flushc <- reply
	<-reply
}

// demoInput is the model input of the demo frame named name (224 x 224: a copy).
func demoInput(t testing.TB, name string) []byte {
	t.Helper()
	px, err := capture.LoadRGB(testlib.Demo("frames", name), capture.Size{W: 224, H: 224}, capture.FitResize)
	if err != nil {
		t.Fatal(err)
	}
	return px
}

func decodeRGB(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	r := img.Bounds()
	out := make([]byte, 0, r.Dx()*r.Dy()*3)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			out = append(out, byte(cr>>8), byte(cg>>8), byte(cb>>8))
		}
	}
	return out
}

// recordDemo runs the demo pipeline into a started recorder and returns the
// recorder, the pipeline's decisions and the demo frames' inputs by recording id.
func recordDemo(t *testing.T, opt Options) (*Recorder, []events.Event) {
	t.Helper()
	bus := events.NewBus()
	opt.Bus, opt.Log = bus, quiet
	if opt.Dir == "" {
		opt.Dir = filepath.Join(t.TempDir(), "recordings")
	}
	r, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	evs := runDemo(t, bus)
	r.flush()
	return r, evs
}

// On a real pipeline and bus: exactly the rejects and the passes above near x
// threshold are recorded, each with the model input it was decided on and its map.
func TestRecordsFromThePipeline(t *testing.T) {
	r, evs := recordDemo(t, Options{Near: 0.9})
	var want []events.Event
	for _, e := range evs {
		if e.Kind != events.EventDecision {
			continue
		}
		if rec := e.Record; rec.Decision == events.Reject || rec.Score > 0.9*rec.Threshold {
			want = append(want, e)
		}
	}
	if len(want) != 12 { // 8 rejects and 4 passes at 9.5 of 16 frames, by the plan
		t.Fatalf("%d decisions to record, the plan makes 12", len(want))
	}
	st := r.Stats()
	if st.Recorded != uint64(len(want)) || st.Count != len(want) || st.Dropped != [DropReasons]uint64{} {
		t.Fatalf("stats %+v, want %d recorded", st, len(want))
	}
	list := r.List(0)
	for i, e := range want {
		m := list[len(list)-1-i]
		if m.Seq != e.Record.Seq || m.Frame != filepath.Base(e.Record.Name) || m.Score != e.Record.Score ||
			m.Decision != e.Record.Decision.String() || m.Model != e.Record.Model || m.Grid != 14 || m.Size != 224 {
			t.Fatalf("recording %d: %+v for decision %+v", i, m, e.Record)
		}
		if got := decodeRGB(t, filepath.Join(r.opt.Dir, m.ID, FramePNG)); !bytes.Equal(got, demoInput(t, m.Frame)) {
			t.Fatalf("%s: frame.png is not the model input of %s", m.ID, m.Frame)
		}
		full, err := readMeta(filepath.Join(r.opt.Dir, m.ID, MetaJSON))
		if err != nil {
			t.Fatal(err)
		}
		grid := make([]float32, 14*14)
		if !r.opt.Bus.Map(e.Map, grid) || !slices.Equal(full.Map, grid) {
			t.Fatalf("%s: meta.json's map is not the decision's", m.ID)
		}
		if ov := decodeRGB(t, filepath.Join(r.opt.Dir, m.ID, OverlayPNG)); len(ov) != 224*224*3 {
			t.Fatalf("%s: overlay.png has %d RGB bytes", m.ID, len(ov))
		}
	}
}

// A decision read after MapRing later ones has no frame in the ring any more: dropped
// and counted, nothing written.
func TestRingOverwrittenOnTheRealBus(t *testing.T) {
	bus := events.NewBus()
	first := runDemo(t, bus)
	runDemo(t, bus) // 16 more decisions: the first run's are out of the ring
	r, err := New(Options{Dir: t.TempDir(), Bus: bus, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, e := range first {
		r.handle(e)
	}
	if st := r.Stats(); st.Recorded != 0 || st.Dropped[DropRing] != 8 {
		t.Fatalf("stats %+v, want the 8 rejects dropped", st)
	}
}

// toolkitScript lists the dataset as `adtr train --plus` reads it: Dataset.train_paths
// and .train (the good images, false rejects included) and .labelled_defects (what
// --defects DIR gives ADTR+), with each image's pixels hashed.
const toolkitScript = `
import hashlib, json, sys
from adtr.data import Dataset
ds, size = Dataset(sys.argv[1]), int(sys.argv[2])
h = lambda a: hashlib.sha256(a.tobytes()).hexdigest()
good = ds.train(size)
bad = ds.labelled_defects(size)
print(json.dumps({
    "train": [p.name for p in ds.train_paths()], "train_sha": [h(a) for a in good],
    "defects": [p.name for p in bad.paths], "kinds": bad.kinds, "defect_sha": [h(a) for a in bad.images],
    "mask_pixels": [int(m.sum()) for m in bad.masks], "labels": [int(l) for l in bad.labels]}))
`

// Feedback round trip: a reject labelled as a defect, a near pass as a false reject,
// and a reject labelled defect then false reject (the last word counts) land in the
// dataset, which the daemon's calibrate/evaluate readers and the toolkit read back as
// exactly these images, pixel for pixel the model's input.
func TestFeedbackRoundTrip(t *testing.T) {
	ds := filepath.Join(t.TempDir(), "dataset")
	r, _ := recordDemo(t, Options{Near: 0.9, Dataset: ds})
	list := r.List(0)
	var rejects, nears []Meta
	for _, m := range list {
		if m.Decision == "reject" {
			rejects = append(rejects, m)
		} else {
			nears = append(nears, m)
		}
	}
	defect, falseRej, changed := rejects[0], nears[0], rejects[1]
	if _, err := r.Label(defect.ID, Defect, "scratch"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Label(falseRej.ID, FalseReject, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Label(changed.ID, Defect, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Label(changed.ID, FalseReject, ""); err != nil {
		t.Fatal(err)
	}
	input := map[string][]byte{} // dataset file name -> the model input
	for _, m := range []Meta{defect, falseRej, changed} {
		input[m.ID+".png"] = demoInput(t, m.Frame)
	}
	goodNames := []string{falseRej.ID + ".png", changed.ID + ".png"}
	slices.Sort(goodNames)
	size := capture.Size{W: 224, H: 224}

	t.Run("daemon", func(t *testing.T) {
		// (a) The daemon's readers. `adtrd calibrate DIR` (cmd/adtrd calibrationImages)
		// takes DIR's good images from capture.ListImages(DIR/train/good) ...
		good, err := capture.ListImages(filepath.Join(ds, "train", "good"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range good {
			names = append(names, filepath.Base(p))
			px, err := capture.LoadRGB(p, size, capture.FitResize)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(px, input[filepath.Base(p)]) {
				t.Fatalf("%s: pixels are not the model input", p)
			}
		}
		if !slices.Equal(names, goodNames) {
			t.Fatalf("train/good holds %v, want %v", names, goodNames)
		}
		// ... and its defects from evaluate.Find(DIR), which wants test/good beside
		// test/<kind>: feedback makes no test/good (false rejects are training images), so
		// on this folder calibrate falls back to train/good alone and sees no defect.
		if _, err := evaluate.Find(ds); !errors.Is(err, evaluate.ErrLayout) {
			t.Fatalf("evaluate.Find on the feedback folder: %v; the fallback described above no longer applies", err)
		}
		// With a test/good of the line's (what the operator merges the feedback into),
		// evaluate.Find reads the defect, its kind and the mask Label wrote.
		merged := filepath.Join(t.TempDir(), "merged")
		if err := os.CopyFS(merged, os.DirFS(ds)); err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(merged, "test", "good"), 0o750)
		if err := os.WriteFile(filepath.Join(merged, "test", "good", "000_good.png"), mustRead(t, testlib.Demo("frames", "000_good.png")), 0o640); err != nil {
			t.Fatal(err)
		}
		items, err := evaluate.Find(merged)
		if err != nil {
			t.Fatal(err)
		}
		var defects []evaluate.Item
		for _, it := range items {
			if it.Kind != evaluate.Good {
				defects = append(defects, it)
			}
		}
		if len(defects) != 1 || defects[0].Kind != "scratch" || filepath.Base(defects[0].Path) != defect.ID+".png" {
			t.Fatalf("evaluate.Find's defects: %+v", defects)
		}
		if px, err := capture.LoadRGB(defects[0].Path, size, capture.FitResize); err != nil || !bytes.Equal(px, input[defect.ID+".png"]) {
			t.Fatalf("%s: pixels are not the model input (%v)", defects[0].Path, err)
		}
	})
	t.Run("toolkit", func(t *testing.T) {
		// (b) The toolkit, as `adtr train --plus --defects DATASET` reads it.
		py := testlib.Python(t) // skipped without the venv, failed under ADTRD_REQUIRE_TOOLS
		cmd := exec.Command(py, "-c", toolkitScript, ds, "224")
		cmd.Dir = filepath.Join(testlib.Root(), "training")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("toolkit: %v\n%s", err, stderr.String())
		}
		var got struct {
			Train, TrainSHA, Defects, Kinds, DefectSHA []string
			MaskPixels, Labels                         []int
		}
		dec := json.NewDecoder(bytes.NewReader(out))
		var raw map[string]json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			t.Fatalf("toolkit output %q: %v", out, err)
		}
		for k, dst := range map[string]any{"train": &got.Train, "train_sha": &got.TrainSHA, "defects": &got.Defects, "kinds": &got.Kinds,
			"defect_sha": &got.DefectSHA, "mask_pixels": &got.MaskPixels, "labels": &got.Labels} {
			if err := json.Unmarshal(raw[k], dst); err != nil {
				t.Fatalf("toolkit output %s: %v", k, err)
			}
		}
		sha := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
		if !slices.Equal(got.Train, goodNames) {
			t.Fatalf("toolkit's train/good: %v, want %v", got.Train, goodNames)
		}
		for i, n := range got.Train {
			if got.TrainSHA[i] != sha(input[n]) {
				t.Fatalf("toolkit's %s: pixels are not the model input", n)
			}
		}
		if !slices.Equal(got.Defects, []string{defect.ID + ".png"}) || !slices.Equal(got.Kinds, []string{"scratch"}) || got.Labels[0] != 1 {
			t.Fatalf("toolkit's labelled defects: %v %v %v", got.Defects, got.Kinds, got.Labels)
		}
		if got.DefectSHA[0] != sha(input[defect.ID+".png"]) {
			t.Fatal("toolkit's defect: pixels are not the model input")
		}
		// The mask: the model's hot spot (a 3 x 3 block of grid cells at 25 over 3) above
		// the threshold, neither empty nor the whole image.
		if n := got.MaskPixels[0]; n == 0 || n >= 224*224/4 {
			t.Fatalf("toolkit's mask has %d pixels", n)
		}
		t.Logf("toolkit (%s) read train/good %v and defects %v (mask %s pixels)", py, got.Train, got.Defects, strconv.Itoa(got.MaskPixels[0]))
	})
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
