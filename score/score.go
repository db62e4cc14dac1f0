// Package score turns a model's low-resolution anomaly map into a pixel map and an
// image score exactly as the toolkit does (training/adtr/scoring.py), without allocating.
package score

import (
	"errors"
	"fmt"
	"math"
)

// ErrParams reports scoring parameters that cannot describe a model.
var ErrParams = errors.New("score: bad parameters")

// ErrNotFinite reports a map with a NaN or infinite value, or a score that is not a
// finite number: a broken model, never a pass (a NaN compares false with any
// threshold), so the pipeline treats it as an inference failure.
var ErrNotFinite = errors.New("score: not a finite number")

// Params are the model-specific numbers, all from the metadata JSON beside the model.
type Params struct {
	Grid      int     // the map is Grid x Grid
	Size      int     // input width = height; the map is upsampled to Size x Size
	Kernel    int     // average-pool kernel, stride 1, no padding
	Scale     float32 // output quantisation: real = Scale * (q - ZeroPoint)
	ZeroPoint int32
}

func (p Params) validate() error {
	switch {
	case p.Grid < 1:
		return fmt.Errorf("%w: grid %d", ErrParams, p.Grid)
	case p.Size < p.Grid:
		return fmt.Errorf("%w: size %d smaller than grid %d", ErrParams, p.Size, p.Grid)
	case p.Kernel < 1 || p.Kernel > p.Size:
		return fmt.Errorf("%w: pool kernel %d outside 1..%d", ErrParams, p.Kernel, p.Size)
	case !(p.Scale > 0) || math.IsInf(float64(p.Scale), 0):
		return fmt.Errorf("%w: output scale %v", ErrParams, p.Scale)
	}
	return nil
}

// Scorer holds every buffer a frame needs, so Score allocates nothing.
type Scorer struct {
	p        Params
	deq      []float32 // Grid*Grid dequantised map
	rows     []float32 // Size*Grid: upsampled along y
	up       []float32 // Size*Size: the pixel map
	integral []float64 // (Size+1)^2 summed-area table
	i0, i1   []int32   // per output coordinate: source indices
	w        []float32 // and the weight of i1
}

// New prepares a scorer for p.
func New(p Params) (*Scorer, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	g, s := p.Grid, p.Size
	sc := &Scorer{
		p: p, deq: make([]float32, g*g), rows: make([]float32, s*g), up: make([]float32, s*s),
		integral: make([]float64, (s+1)*(s+1)), i0: make([]int32, s), i1: make([]int32, s), w: make([]float32, s),
	}
	// Bilinear with aligned corners (UniAD's nn.UpsamplingBilinear2d): output i samples
	// the source at i*(g-1)/(s-1). Same float64 position, float32 weight as numpy.
	for i := 0; i < s; i++ {
		pos := 0.0
		if s > 1 && g > 1 {
			pos = float64(i) * float64(g-1) / float64(s-1)
		}
		lo := int(math.Floor(pos))
		lo = min(lo, g-1)
		sc.i0[i], sc.i1[i] = int32(lo), int32(min(lo+1, g-1))
		sc.w[i] = float32(pos - float64(lo))
	}
	return sc, nil
}

// Params returns the parameters the scorer was built with.
func (sc *Scorer) Params() Params { return sc.p }

// Map is the last frame's upsampled pixel map (Size*Size, row-major); it is
// overwritten by the next Score.
func (sc *Scorer) Map() []float32 { return sc.up }

// Grid is the last frame's low-resolution map in real values (Grid*Grid, row-major);
// it is overwritten by the next Score.
func (sc *Scorer) Grid() []float32 { return sc.deq }

// ScoreInt8 scores a raw int8 map of Grid*Grid values.
func (sc *Scorer) ScoreInt8(raw []int8) (float64, error) {
	if len(raw) != len(sc.deq) {
		return 0, fmt.Errorf("%w: map has %d values, want %d", ErrParams, len(raw), len(sc.deq))
	}
	for i, q := range raw {
		sc.deq[i] = (float32(q) - float32(sc.p.ZeroPoint)) * sc.p.Scale
	}
	return sc.finite(sc.score())
}

// ScoreFloat scores an already real-valued Grid*Grid map (float graphs).
func (sc *Scorer) ScoreFloat(m []float32) (float64, error) {
	if len(m) != len(sc.deq) {
		return 0, fmt.Errorf("%w: map has %d values, want %d", ErrParams, len(m), len(sc.deq))
	}
	for i, v := range m {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return math.NaN(), fmt.Errorf("%w: map value %d is %v", ErrNotFinite, i, v)
		}
	}
	copy(sc.deq, m)
	return sc.finite(sc.score())
}

// finite passes a finite score through; anything else (an overflowing map) is an error.
func (sc *Scorer) finite(s float64) (float64, error) {
	if math.IsNaN(s) || math.IsInf(s, 0) {
		return math.NaN(), fmt.Errorf("%w: image score %v", ErrNotFinite, s)
	}
	return s, nil
}

func (sc *Scorer) score() float64 {
	g, s, k := sc.p.Grid, sc.p.Size, sc.p.Kernel
	// along y: rows[y][x'] for each source column x'
	for y := 0; y < s; y++ {
		a, b, w := int(sc.i0[y])*g, int(sc.i1[y])*g, sc.w[y]
		r := sc.rows[y*g : y*g+g]
		for x := 0; x < g; x++ {
			r[x] = sc.deq[a+x]*(1-w) + sc.deq[b+x]*w
		}
	}
	// along x, building the summed-area table on the way
	stride := s + 1
	for y := 0; y < s; y++ {
		r := sc.rows[y*g : y*g+g]
		u := sc.up[y*s : y*s+s]
		var run float64
		above := sc.integral[y*stride : y*stride+stride]
		here := sc.integral[(y+1)*stride : (y+1)*stride+stride]
		for x := 0; x < s; x++ {
			w := sc.w[x]
			v := r[sc.i0[x]]*(1-w) + r[sc.i1[x]]*w
			u[x] = v
			run += float64(v)
			here[x+1] = above[x+1] + run
		}
	}
	best := math.Inf(-1)
	for y := k; y <= s; y++ {
		top := sc.integral[(y-k)*stride:]
		bot := sc.integral[y*stride:]
		for x := k; x <= s; x++ {
			if v := bot[x] - top[x] - bot[x-k] + top[x-k]; v > best {
				best = v
			}
		}
	}
	return best / float64(k*k)
}
