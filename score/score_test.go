package score_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/adtrd/adtrd/internal/testlib"
	"github.com/adtrd/adtrd/score"
)

func demoScorer(t testing.TB, g testlib.Golden) *score.Scorer {
	sc, err := score.New(score.Params{Grid: g.Output.Shape[1], Size: 224, Kernel: g.PoolKernel, Scale: float32(g.Output.Scale), ZeroPoint: g.Output.ZeroPoint})
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// The toolkit's scores on the golden maps, reproduced from the same int8 maps.
func TestScoresMatchTheToolkit(t *testing.T) {
	g := testlib.LoadGolden(t)
	sc := demoScorer(t, g)
	for _, f := range g.Frames {
		got, err := sc.ScoreInt8(int8s(f.Map))
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-f.Score) > 1e-4*math.Max(1, math.Abs(f.Score)) {
			t.Errorf("%s: score %.6f, toolkit %.6f", f.File, got, f.Score)
		}
		if (got > g.Threshold) != f.Reject {
			t.Errorf("%s: decision differs from the toolkit's", f.File)
		}
	}
}

func TestUpsampleKeepsCornersAndConstants(t *testing.T) {
	sc, err := score.New(score.Params{Grid: 3, Size: 9, Kernel: 3, Scale: 1})
	if err != nil {
		t.Fatal(err)
	}
	m := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	s, _ := sc.ScoreFloat(m)
	up := sc.Map()
	if up[0] != 1 || up[8] != 3 || up[72] != 7 || up[80] != 9 {
		t.Fatalf("corners %v %v %v %v", up[0], up[8], up[72], up[80])
	}
	// aligned corners on 3 -> 9: pixel 4 is exactly source 1 (the centre)
	if up[4*9+4] != 5 {
		t.Fatalf("centre %v", up[40])
	}
	// max 3x3 mean is at the bottom-right corner
	want := 0.0
	for y := 6; y < 9; y++ {
		for x := 6; x < 9; x++ {
			want += float64(up[y*9+x])
		}
	}
	if math.Abs(s-want/9) > 1e-6 {
		t.Fatalf("score %v want %v", s, want/9)
	}
}

func TestBadParams(t *testing.T) {
	tests := []struct {
		p    score.Params
		want string
	}{
		{score.Params{Grid: 0, Size: 224, Kernel: 16, Scale: 1}, "grid 0"},                   // no map
		{score.Params{Grid: 14, Size: 8, Kernel: 4, Scale: 1}, "smaller than grid"},          // input smaller than map
		{score.Params{Grid: 14, Size: 224, Kernel: 300, Scale: 1}, "pool kernel 300"},        // kernel larger than image
		{score.Params{Grid: 14, Size: 224, Kernel: 16, Scale: 0}, "output scale 0"},          // no quantisation scale
		{score.Params{Grid: 14, Size: 224, Kernel: 16, Scale: float32(math.NaN())}, "scale"}, // NaN
	}
	for _, tc := range tests {
		_, err := score.New(tc.p)
		if !errors.Is(err, score.ErrParams) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want %q", tc.p, err, tc.want)
		}
	}
	sc, _ := score.New(score.Params{Grid: 2, Size: 4, Kernel: 2, Scale: 1})
	if _, err := sc.ScoreInt8(make([]int8, 3)); !errors.Is(err, score.ErrParams) {
		t.Fatalf("short map: %v", err)
	}
}

func TestScoreDoesNotAllocate(t *testing.T) {
	g := testlib.LoadGolden(t)
	sc := demoScorer(t, g)
	m := int8s(g.Frames[0].Map)
	if n := testing.AllocsPerRun(20, func() { sc.ScoreInt8(m) }); n != 0 {
		t.Fatalf("%v allocs per frame", n)
	}
}

func BenchmarkScore(b *testing.B) {
	g := testlib.LoadGolden(b)
	sc := demoScorer(b, g)
	m := int8s(g.Frames[0].Map)
	b.ReportAllocs()
	for b.Loop() {
		sc.ScoreInt8(m)
	}
}

func int8s(v []int) []int8 {
	out := make([]int8, len(v))
	for i, x := range v {
		out[i] = int8(x)
	}
	return out
}

// A broken model's map must never score as a pass: a NaN anywhere used to be skipped by
// the max (NaN > best is false), leaving the score of the clean windows.
func TestNonFiniteMapsAreErrors(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	tests := []struct {
		name string
		m    []float32
		want string
	}{
		{"one NaN among normal values", []float32{1, 2, nan, 1}, "map value 2 is NaN"}, // the max would have skipped it
		{"all NaN", []float32{nan, nan, nan, nan}, "map value 0 is NaN"},               // no window is a number
		{"+Inf", []float32{1, inf, 1, 1}, "map value 1 is +Inf"},                       // overflowed float graph
		{"-Inf", []float32{1, 1, 1, float32(math.Inf(-1))}, "map value 3 is -Inf"},     // would make every window -Inf
	}
	sc, err := score.New(score.Params{Grid: 2, Size: 4, Kernel: 2, Scale: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		s, err := sc.ScoreFloat(tc.m)
		if !errors.Is(err, score.ErrNotFinite) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: score %v, err %v; want ErrNotFinite with %q", tc.name, s, err, tc.want)
		}
		if !math.IsNaN(s) {
			t.Errorf("%s: score %v, want NaN with the error", tc.name, s)
		}
	}
	if s, err := sc.ScoreFloat([]float32{1, 2, 3, 4}); err != nil || math.IsNaN(s) {
		t.Fatalf("finite map: %v, %v", s, err)
	}
}
