package heatmap

import (
	"math"
	"testing"
)

// The written-out table is the documented polynomial, rounded (within one step: the
// polynomial evaluated on another machine may round the other way at a half).
func TestTurboTable(t *testing.T) {
	coef := [3][6]float64{
		{0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943},
		{0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604},
		{0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973},
	}
	for i, c := range turbo {
		x := float64(i) / 255
		for ch := range 3 {
			v, p := 0.0, 1.0
			for _, k := range coef[ch] {
				v += k * p
				p *= x
			}
			want := math.Round(255 * math.Max(0, math.Min(1, v)))
			if math.Abs(float64(c[ch])-want) > 1 {
				t.Fatalf("turbo[%d][%d] = %d, the polynomial gives %v", i, ch, c[ch], want)
			}
		}
	}
	// No table colour is one of the marks'.
	for i, c := range turbo {
		for _, m := range [][3]uint8{{ContourColor.R, ContourColor.G, ContourColor.B}, {MarkerColor.R, MarkerColor.G, MarkerColor.B}} {
			if c == m {
				t.Fatalf("turbo[%d] is a mark's colour %v", i, m)
			}
		}
	}
}
