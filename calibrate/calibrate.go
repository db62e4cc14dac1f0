// Package calibrate proposes reject thresholds from scored images: at a target
// false-reject rate from good parts, and with labelled defects at a target escape rate
// and at the best F1, each with both rates and the confidence a sample of that size gives.
package calibrate

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/gonum/stat/distuv"
)

// ErrTooFew reports a sample too small for what was asked of it.
var ErrTooFew = errors.New("too few images")

// Confidence is the one-sided confidence of the rate bounds (Clopper-Pearson).
const Confidence = 0.95

// UpperBound is the one-sided Clopper-Pearson upper bound, at Confidence, of a rate
// seen k times in n trials: the p at which k or fewer events have probability
// 1-Confidence, the Beta(k+1, n-k) quantile (1 when k == n). With k = 0 it is
// 1 - (1-Confidence)^(1/n), about 3/n: n good parts without a false reject bound the
// false-reject rate near 3/n, never below.
func UpperBound(k, n int) float64 {
	if n <= 0 {
		return 1
	}
	if k >= n {
		return 1
	}
	return distuv.Beta{Alpha: float64(k + 1), Beta: float64(n - k)}.Quantile(Confidence)
}

// Needed is how many good parts, none falsely rejected, bound the false-reject rate
// at or below rate: the smallest n with 1 - (1-Confidence)^(1/n) <= rate.
func Needed(rate float64) int {
	if rate <= 0 || rate >= 1 {
		return math.MaxInt
	}
	return int(math.Ceil(math.Log(1-Confidence) / math.Log(1-rate)))
}

// Point is one proposed threshold with what it does on the scored images: a score
// above Threshold is a reject.
type Point struct {
	Name       string  `json:"name"`
	Threshold  float64 `json:"threshold"`
	FalseRej   int     `json:"false_rejects"`
	Good       int     `json:"good"`
	Escapes    int     `json:"escapes"`
	Defective  int     `json:"defective"`
	FRR        float64 `json:"false_reject_rate"`
	FRRUpper   float64 `json:"false_reject_rate_upper_95"`
	Escape     float64 `json:"escape_rate"`
	EscapeUp   float64 `json:"escape_rate_upper_95"`
	F1         float64 `json:"f1"`
	Sufficient bool    `json:"sufficient"` // the upper bound meets the target it was chosen for
}

// at fills a Point for threshold t.
func at(name string, t float64, good, bad []float64) Point {
	p := Point{Name: name, Threshold: t, Good: len(good), Defective: len(bad)}
	for _, s := range good {
		if s > t {
			p.FalseRej++
		}
	}
	for _, s := range bad {
		if s <= t {
			p.Escapes++
		}
	}
	p.FRR, p.FRRUpper = rate(p.FalseRej, p.Good), UpperBound(p.FalseRej, p.Good)
	if p.Defective > 0 {
		p.Escape, p.EscapeUp = rate(p.Escapes, p.Defective), UpperBound(p.Escapes, p.Defective)
		tp := p.Defective - p.Escapes
		p.F1 = 2 * float64(tp) / float64(2*tp+p.FalseRej+p.Escapes)
	}
	return p
}

func rate(k, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(k) / float64(n)
}

// cuts are the candidate thresholds: midway between neighbouring distinct scores, and
// just above the highest; a threshold between two scores decides both the same way
// however it is rounded for display.
func cuts(all []float64) []float64 {
	s := append([]float64(nil), all...)
	sort.Float64s(s)
	var out []float64
	for i := 1; i < len(s); i++ {
		if s[i] > s[i-1] {
			out = append(out, s[i-1]+(s[i]-s[i-1])/2)
		}
	}
	if len(s) > 0 {
		out = append(out, s[len(s)-1]+math.Max(1e-3, math.Abs(s[len(s)-1])*1e-3))
	}
	return out
}

// Propose returns the thresholds for the scores of good and (possibly no) defective
// images: the lowest with at most frr false rejects among the good images; with
// defects, the highest with at most escape escapes, and the F1-best (the highest
// threshold among equals). Sufficient says whether the sample bounds the rate at its
// target (UpperBound at or below it).
func Propose(good, bad []float64, frr, escape float64) ([]Point, error) {
	if len(good) == 0 {
		return nil, fmt.Errorf("%w: no good images", ErrTooFew)
	}
	for _, s := range append(append([]float64(nil), good...), bad...) {
		if math.IsNaN(s) || math.IsInf(s, 0) {
			return nil, fmt.Errorf("calibrate: score %v is not a finite number", s)
		}
	}
	cs := cuts(append(append([]float64(nil), good...), bad...))
	// Each rate's threshold is the one whose 95 % upper bound meets the target (the
	// sample vouches for it), and where none does (too few images even with no error
	// at all), the one with no error, whose bound is the least, marked insufficient: a
	// stricter target then never gets a looser threshold. Picking by the observed rate
	// took 4 false rejects of 8 for a target of 0.5, whose bound is 0.81, and called 8
	// good images too few where 5 without a false reject suffice.
	var out []Point
	if p, ok := pick(cs, "false-reject rate", false, good, bad, func(p Point) bool { return p.FRRUpper <= frr }, func(p Point) bool { return p.FalseRej == 0 }); ok {
		out = append(out, p)
	}
	if len(bad) == 0 {
		return out, nil
	}
	if p, ok := pick(cs, "escape rate", true, good, bad, func(p Point) bool { return p.EscapeUp <= escape }, func(p Point) bool { return p.Escapes == 0 }); ok {
		out = append(out, p)
	}
	best := Point{F1: -1}
	for _, t := range cs {
		if p := at("best F1", t, good, bad); p.F1 >= best.F1 {
			best = p
		}
	}
	best.Sufficient = true
	return append(out, best), nil
}

// pick is the first cut (the lowest, or with fromTop the highest) whose point is
// vouched for (Sufficient), else the first without an error, else none.
func pick(cs []float64, name string, fromTop bool, good, bad []float64, vouched, clean func(Point) bool) (Point, bool) {
	for _, want := range []func(Point) bool{vouched, clean} {
		for i := range cs {
			if fromTop {
				i = len(cs) - 1 - i
			}
			if p := at(name, cs[i], good, bad); want(p) {
				p.Sufficient = vouched(p)
				return p, true
			}
		}
	}
	return Point{}, false
}
