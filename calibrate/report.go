package calibrate

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/adtrd/adtrd/config"
)

// Histogram draws good (#) and defect (x) scores in bins text rows, each threshold
// marked on the row that holds it.
func Histogram(good, bad []float64, points []Point, bins int) string {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range append(append([]float64(nil), good...), bad...) {
		lo, hi = math.Min(lo, s), math.Max(hi, s)
	}
	for _, p := range points {
		lo, hi = math.Min(lo, p.Threshold), math.Max(hi, p.Threshold)
	}
	if !(hi > lo) {
		hi = lo + 1
	}
	w := (hi - lo) / float64(bins)
	bin := func(s float64) int { return min(bins-1, int((s-lo)/w)) }
	g, d := make([]int, bins), make([]int, bins)
	for _, s := range good {
		g[bin(s)]++
	}
	for _, s := range bad {
		d[bin(s)]++
	}
	most := 1
	for i := range g {
		most = max(most, g[i], d[i])
	}
	const width = 40
	bar := func(n int, c string) string {
		if n == 0 {
			return ""
		}
		return strings.Repeat(c, max(1, n*width/most))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "score               good (#) / defective (x)\n")
	for i := bins - 1; i >= 0; i-- {
		var marks []string
		for _, p := range points {
			if bin(p.Threshold) == i {
				marks = append(marks, fmt.Sprintf("<- %s %.4f", p.Name, p.Threshold))
			}
		}
		fmt.Fprintf(&b, "%8.3f-%-8.3f %4d %-*s %4d %-*s %s\n", lo+float64(i)*w, lo+float64(i+1)*w,
			g[i], width, bar(g[i], "#"), d[i], width, bar(d[i], "x"), strings.Join(marks, " "))
	}
	return b.String()
}

// Plot writes a PNG of both score distributions with the thresholds as vertical lines.
func Plot(path string, good, bad []float64, points []Point) error {
	p := plot.New()
	p.Title.Text = "adtrd calibrate: image scores"
	p.X.Label.Text = "score"
	p.Y.Label.Text = "images"
	bins := max(10, min(50, (len(good)+len(bad))/5))
	top := 1.0 // the highest bar: the threshold lines reach it
	for _, set := range []struct {
		name   string
		scores []float64
		c      color.NRGBA
	}{{"good", good, color.NRGBA{40, 120, 200, 170}}, {"defective", bad, color.NRGBA{220, 60, 40, 170}}} {
		if len(set.scores) == 0 {
			continue
		}
		h, err := plotter.NewHist(plotter.Values(set.scores), bins)
		if err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		h.FillColor, h.LineStyle.Width = set.c, 0
		for _, b := range h.Bins {
			top = math.Max(top, b.Weight)
		}
		p.Add(h)
		p.Legend.Add(set.name, h)
	}
	for i, pt := range points {
		l, err := plotter.NewLine(plotter.XYs{{X: pt.Threshold, Y: 0}, {X: pt.Threshold, Y: top}})
		if err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		l.Color = []color.Color{color.Black, color.NRGBA{0, 150, 0, 255}, color.NRGBA{150, 0, 150, 255}}[i%3]
		l.Dashes = [][]vg.Length{nil, {vg.Points(6), vg.Points(3)}, {vg.Points(2), vg.Points(2)}}[i%3]
		l.Width = vg.Points(2)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s %.4f", pt.Name, pt.Threshold), l)
	}
	w, err := p.WriterTo(8*vg.Inch, 4*vg.Inch, "png")
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return writeAtomic(path, buf.Bytes(), 0o644)
}

var thresholdLine = regexp.MustCompile(`(?m)^threshold:[^\n#]*`)

// WriteThreshold sets the top-level threshold key of the config file at path to t,
// keeping every other line and comment, and replaces the file atomically (a temporary
// file in its folder, then rename), so a running daemon's watcher reloads it once.
// The new text is decoded strictly first: nothing is written that the daemon would
// refuse. Through a symlink, the file it leads to is edited and the link kept.
func WriteThreshold(path string, t float64) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	val := "threshold: " + strconv.FormatFloat(t, 'f', 4, 64)
	var text []byte
	switch n := len(thresholdLine.FindAllIndex(old, -1)); n {
	case 0:
		text = append(append(bytes.TrimRight(old, "\n"), '\n'), []byte(val+" # set by adtrd calibrate\n")...)
		if len(bytes.TrimSpace(old)) == 0 {
			text = []byte(val + " # set by adtrd calibrate\n")
		}
	case 1:
		text = thresholdLine.ReplaceAll(old, []byte(val+" "))
	default:
		return fmt.Errorf("%s: %d top-level threshold keys", path, n)
	}
	if _, err := config.Decode(path, text); err != nil {
		return fmt.Errorf("not writing %s: %w", path, err)
	}
	return writeAtomic(path, text, 0o644)
}
