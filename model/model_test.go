package model_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/adtrd/adtrd/internal/testlib"
	"github.com/adtrd/adtrd/model"
	"github.com/adtrd/adtrd/score"
)

func TestDemoMetadata(t *testing.T) {
	m, err := model.Load(testlib.Demo("adtr.tflite.json"))
	if err != nil {
		t.Fatal(err)
	}
	p := m.ScoreParams()
	if p.Grid != 14 || p.Size != 224 || p.Kernel != 16 || p.Scale <= 0 {
		t.Fatalf("%+v", p)
	}
	if _, err := m.CheckGraphFile(testlib.Demo("adtr.tflite")); err != nil {
		t.Fatal(err)
	}
	if !m.Exact() {
		t.Fatal("the demo graph's metadata does not say exact int8 rounding")
	}
	if _, err := m.CheckGraphFile(testlib.Demo("adtr.onnx")); !errors.Is(err, model.ErrMetadata) {
		t.Fatalf("another graph's bytes accepted: %v", err)
	}
}

func TestBadMetadata(t *testing.T) {
	raw, err := os.ReadFile(testlib.Demo("adtr.tflite.json"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(m map[string]any)
		want   string
	}{
		{"format", func(m map[string]any) { m["format"] = "other/9" }, `format "other/9"`},       // another file kind
		{"upsample", func(m map[string]any) { m["upsample"] = "nearest" }, `upsample "nearest"`}, // a rule the scorer lacks
		{"threshold", func(m map[string]any) { m["threshold"] = 0 }, "threshold 0"},              // no threshold
		{"kernel", func(m map[string]any) { m["pool_kernel"] = 999 }, "pool_kernel 999"},         // kernel larger than the image
		{"grid", func(m map[string]any) { m["grid"] = []int{14} }, "grid [14]"},                  // not a square grid
		// a stride that does not take the input to the grid: metadata of another graph
		{"stride", func(m map[string]any) { m["stride"] = 12 }, "stride 12 with grid [14 14]: the grid times the stride must be the input width 224"},
		{"negative stride", func(m map[string]any) { m["stride"] = -16 }, "stride -16"},
		{"zero stride", func(m map[string]any) { m["stride"] = 0 }, "stride 0: want a positive number"},      // 0 is no stride
		{"null stride", func(m map[string]any) { m["stride"] = nil }, "stride null: want a positive number"}, // null reads as 0
		// the top level edited, the configuration it came from not: the threshold was
		// computed with the other kernel
		{"pool kernel edited", func(m map[string]any) { m["pool_kernel"] = 8 }, "pool_kernel 8 disagrees with model.pool_kernel 16"},
		// an output shape that is not the grid's: one of the two was edited
		{"output shape", func(m map[string]any) { m["output"].(map[string]any)["shape"] = []int{1, 28, 28} }, "output shape [1 28 28] disagrees with grid [14 14]"},
		{"channels", func(m map[string]any) { m["input"].(map[string]any)["channels"] = 1 }, "input has 1 channels"}, // grey input
		{"sha", func(m map[string]any) { m["sha256"] = "abc" }, `sha256 "abc"`},                                      // not a hash
		// a zero point no int8 tensor has: the score range derived from it would be wrong
		{"zero point", func(m map[string]any) { m["output"].(map[string]any)["zero_point"] = 200 }, "zero_point 200 outside the int8 range"},
		// a scale float32 cannot hold: the map would be all infinities
		{"huge scale", func(m map[string]any) { m["output"].(map[string]any)["scale"] = 1e300 }, "output scale 1e+300"},
		// a scale that rounds to 0 in float32: every score 0, every part a pass
		{"tiny scale", func(m map[string]any) { m["output"].(map[string]any)["scale"] = 1e-50 }, "output scale 1e-50"},
		// held-out scores that contradict each other: no warning could be trusted
		{"normal scores", func(m map[string]any) { m["normal_scores"].(map[string]any)["min"] = 99 }, "normal_scores: count 20, min 99"},
		// a negative count is no count, whatever the scores say
		{"normal count", func(m map[string]any) { m["normal_scores"].(map[string]any)["count"] = -1 }, "normal_scores: count -1: want the number of held-out good images"},
		// a spread no 20 scores within min..max can have: too wide, or none at all
		{"normal std too wide", func(m map[string]any) { m["normal_scores"].(map[string]any)["std"] = 5 }, "normal_scores: std 5: 20 scores within"},
		{"normal std zero", func(m map[string]any) { m["normal_scores"].(map[string]any)["std"] = 0 }, "normal_scores: std 0: 20 scores within"},
		// one score with a range
		{"normal count 1", func(m map[string]any) { m["normal_scores"].(map[string]any)["count"] = 1 }, "normal_scores: count 1 with min"},
		// null reads as 0 in Go: a held-out score of 0 would be believed
		{"normal min null", func(m map[string]any) { m["normal_scores"].(map[string]any)["min"] = nil }, "normal_scores: min missing or null (count 20)"},
		// scores with no count: which is wrong?
		{"normal count 0 with scores", func(m map[string]any) { m["normal_scores"].(map[string]any)["count"] = 0 }, "normal_scores: count 0 (not known) with scores given"},
		// the wrong JSON type: said in JSON's words, not Go's
		{"normal scores an array", func(m map[string]any) { m["normal_scores"] = []int{1} }, "normal_scores is a JSON array, want an object"},
		// a spread below zero
		{"normal std", func(m map[string]any) { m["normal_scores"].(map[string]any)["std"] = -1 }, "normal_scores: std -1: want a finite number, 0 or more"},
		// an engine's reference score no map can give: the export is not this graph's
		{"reference above the top", func(m map[string]any) {
			m["engines"].(map[string]any)["tflite"].(map[string]any)["reference_score"] = 40
		}, "engines.tflite: reference_score 40.0000: outside the scores the map can give"},
		// an engine listed with no reference score
		{"reference null", func(m map[string]any) {
			m["engines"].(map[string]any)["tflite"].(map[string]any)["reference_score"] = nil
		}, "engines.tflite: reference_score missing or null"},
		// a tolerance below zero
		{"reference tolerance", func(m map[string]any) {
			m["engines"].(map[string]any)["tflite"].(map[string]any)["tolerance"] = -1
		}, "engines.tflite: tolerance -1: want a finite number, 0 or more"},
		// good images that scored above what the int8 map can give (31.9 at its top)
		{"normal above the top", func(m map[string]any) {
			n := m["normal_scores"].(map[string]any)
			n["max"], n["mean"] = 1e308, 20
		}, "normal_scores: min 8.9585, max 1e+308: outside the scores the map can give, 0.0000..31.8750 (the int8 map's top step"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			json.Unmarshal(raw, &m)
			tc.change(m)
			b, _ := json.Marshal(m)
			p := filepath.Join(t.TempDir(), "m.tflite.json")
			os.WriteFile(p, b, 0o644)
			_, err := model.Load(p)
			if !errors.Is(err, model.ErrMetadata) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("err = %v, want %q naming %s", err, tc.want, p)
			}
		})
	}
}

// The score range is derived from the output tensor through the scorer's own maths:
// the demo's top is 0.125 x 255 steps = 31.875 (plus the scorer's float32 rounding),
// and no map scores above it: a saturated map reaches it, a map of random values
// stays under it.
func TestScoreRangeIsWhatTheScorerReaches(t *testing.T) {
	m, err := model.Load(testlib.Demo("adtr.tflite.json"))
	if err != nil {
		t.Fatal(err)
	}
	lo, hi, why := m.ScoreRange()
	if lo != 0 || math.Abs(hi-31.875) > 1e-5 || !strings.Contains(why, "0.125 x (127 - -128)") {
		t.Fatalf("range %v..%v (%s), want 0..31.875", lo, hi, why)
	}
	sc, err := score.New(m.ScoreParams())
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]int8, m.Grid[0]*m.Grid[1])
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 200; n++ {
		for i := range raw {
			switch {
			case n == 0:
				raw[i] = math.MaxInt8
			case n == 1:
				raw[i] = math.MinInt8
			default: // mostly saturated, to press on the top
				raw[i] = int8(math.MaxInt8 - rng.IntN(1+n%4))
			}
		}
		s, err := sc.ScoreInt8(raw)
		if err != nil || s < lo || s > hi || n == 0 && s != hi || n == 1 && s != lo {
			t.Fatalf("map %d scores %v (%v), outside %v..%v", n, s, err, lo, hi)
		}
	}
}

// CheckThreshold refuses what no score can exceed and warns about what good parts
// exceed, for an int8 graph (a bounded map) and a float32 one (bounded by float32
// only, so the held-out scores are all there is to warn by).
func TestCheckThreshold(t *testing.T) {
	int8Meta, err := model.Load(testlib.Demo("adtr.tflite.json"))
	if err != nil {
		t.Fatal(err)
	}
	floatMeta, err := model.Load(testlib.Demo("adtr.onnx.json"))
	if err != nil {
		t.Fatal(err)
	}
	unknown := *int8Meta
	unknown.NormalScores.Count = 0
	for _, tc := range []struct {
		name string
		m    *model.Metadata
		t    float64
		err  string // "": no error
		warn string // "": no warning
	}{
		{"suggested", int8Meta, int8Meta.Threshold, "", ""},                                                            // the export's own threshold
		{"the exact top", int8Meta, 31.875, "", ""},                                                                    // a saturated map scores 31.8750013 in float32: still exceeded
		{"over the top", int8Meta, 31.87501, "31.87501: no score can exceed it: the model's scores reach 31.8750", ""}, // above even the saturated map: score > threshold never holds
		{"above the top", int8Meta, 40, "every part would pass", ""},                                                   // a typo for 4.0
		{"1e308", int8Meta, 1e308, "no score can exceed it", ""},                                                       // a pasted "disable"
		{"+Inf", int8Meta, math.Inf(1), "no score can exceed it", ""},                                                  // JSON cannot say it; a caller can
		{"NaN", int8Meta, math.NaN(), "no score can exceed it", ""},                                                    // compares false with every score
		{"under the good max", int8Meta, 9.5, "", "below the highest held-out good image's score 9.8535"},              // some good parts rejected
		{"under every good score", int8Meta, 5, "", "every part would be rejected"},                                    // every good part rejected
		{"no held-out scores", &unknown, 5, "", ""},                                                                    // nothing known to warn by
		{"float: float32's top", floatMeta, math.MaxFloat32, "a float32 map's largest value", ""},                      // no float32 map value exceeds it
		{"float: 1e308", floatMeta, 1e308, "no score can exceed it", ""},                                               // beyond float32
		{"float: far above good", floatMeta, 1e6, "", "over 10x the highest held-out good image's score 8.6809"},       // reachable, but only in theory
		{"float: suggested", floatMeta, floatMeta.Threshold, "", ""},                                                   // the export's own threshold
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := tc.m.CheckThreshold(tc.t)
			if tc.err == "" && err != nil || tc.err != "" && (!errors.Is(err, model.ErrUnreachable) || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
			if tc.warn == "" && w != "" || !strings.Contains(w, tc.warn) {
				t.Fatalf("warning %q, want %q", w, tc.warn)
			}
		})
	}
}

// A model file that cannot be read as one is a model error, never a metadata one: the
// metadata beside it may be fine, and "model metadata: /dev/zero" sends a user to the
// wrong file.
func TestUnreadableModelFileIsAModelError(t *testing.T) {
	m, err := model.Load(testlib.Demo("adtr.tflite.json"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.tflite")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.tflite")
	os.WriteFile(empty, nil, 0o644)
	unreadable := filepath.Join(dir, "unreadable.tflite")
	os.WriteFile(unreadable, []byte("x"), 0o000)
	for _, tc := range []struct {
		path, want string
	}{
		{"/dev/zero", "not a regular file (a character device)"}, // a device never ends
		{dir, "not a regular file (a directory)"},                // a folder
		{fifo, "not a regular file (a FIFO)"},                    // a FIFO would block the read
		{empty, "empty file"},                                    // cut to nothing
		{filepath.Join(dir, "missing.tflite"), "no such file"},   // not there
		{unreadable, "permission denied"},                        // mode 000 (root reads it anyway: skipped)
	} {
		if tc.path == unreadable && os.Getuid() == 0 {
			continue
		}
		_, err := m.CheckGraphFile(tc.path)
		if !errors.Is(err, model.ErrModel) || errors.Is(err, model.ErrMetadata) || !strings.Contains(err.Error(), tc.want) ||
			!strings.HasPrefix(err.Error(), "model: ") || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("%s: %v, want a model error with %q", tc.path, err, tc.want)
		}
	}
}

// The reference frame is the toolkit's (training/adtr/reference.py): its corners and
// a square boundary, channel by channel.
func TestReferenceFrame(t *testing.T) {
	const size = 224
	px := make([]byte, size*size*3)
	model.ReferenceFrame(px, size)
	at := func(x, y, c int) byte { return px[(y*size+x)*3+c] }
	for _, tc := range []struct {
		x, y, c int
		want    byte
	}{
		{0, 0, 0, 100},     // an even square, red
		{0, 0, 2, 120},     // an even square, blue
		{15, 15, 1, 110},   // still the first square
		{16, 0, 0, 160},    // the next square along x: odd
		{16, 0, 2, 140},    // odd, blue
		{16, 16, 0, 100},   // diagonal: even again
		{223, 223, 1, 110}, // the last pixel: (13+13) even
	} {
		if got := at(tc.x, tc.y, tc.c); got != tc.want {
			t.Errorf("pixel (%d,%d) channel %d = %d, want %d", tc.x, tc.y, tc.c, got, tc.want)
		}
	}
	// the whole frame, byte for byte the toolkit's (test_reference.py holds the same hash)
	if sum := sha256.Sum256(px); hex.EncodeToString(sum[:]) != referenceFrame224 {
		t.Errorf("reference frame sha256 %x, want the toolkit's %s", sum, referenceFrame224)
	}
}

// referenceFrame224 is the SHA-256 of the toolkit's reference_frame(224).tobytes().
const referenceFrame224 = "98352e8584ddc13c52fa428324d6b55f3b8c39346a44b9f549f38b540d93e8ec"
