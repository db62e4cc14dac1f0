package heatmap_test

import (
	"bytes"
	"errors"
	"flag"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/adtrd/adtrd/heatmap"
	"github.com/adtrd/adtrd/score"
)

var update = flag.Bool("update", false, "rewrite testdata/*.png from the current output")

// synthFrame is a size x size RGB frame: a diagonal gradient with a checker, so that
// a misplaced pixel shows.
func synthFrame(size int) []byte {
	f := make([]byte, size*size*3)
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			i := 3 * (y*size + x)
			f[i] = byte(x * 255 / size)
			f[i+1] = byte(y * 255 / size)
			f[i+2] = 64
			if (x/16+y/16)%2 == 0 {
				f[i+2] = 192
			}
		}
	}
	return f
}

// spot is a gridN x gridN map: base everywhere, plus a Gaussian of height peak and
// width sigma (grid cells) centred on (cx, cy).
func spot(gridN int, base, peak, cx, cy, sigma float64) []float32 {
	g := make([]float32, gridN*gridN)
	for y := 0; y < gridN; y++ {
		for x := 0; x < gridN; x++ {
			d2 := (float64(x)-cx)*(float64(x)-cx) + (float64(y)-cy)*(float64(y)-cy)
			g[y*gridN+x] = float32(base + peak*math.Exp(-d2/(2*sigma*sigma)))
		}
	}
	return g
}

// The overlay of a synthetic frame and map is the golden image, pixel for pixel
// (pixels, not file bytes: compress/flate may change between Go releases).
// go test ./heatmap -run Golden -update rewrites it.
func TestOverlayGolden(t *testing.T) {
	const size, gridN, thr = 224, 14, 10.0
	frame, grid := synthFrame(size), spot(gridN, 4, 12, 9.3, 4.6, 1.4)
	dst := image.NewRGBA(image.Rect(0, 0, size, size))
	if err := heatmap.Overlay(dst, frame, size, grid, gridN, thr); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "overlay.png")
	if *update {
		var b bytes.Buffer
		if err := heatmap.EncodePNG(&b, dst); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := decode(t, path)
	if want.Bounds() != dst.Bounds() {
		t.Fatalf("golden is %v, overlay %v", want.Bounds(), dst.Bounds())
	}
	diff := 0
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			if c, w := dst.RGBAAt(x, y), rgbaAt(want, x, y); [4]uint8{c.R, c.G, c.B, c.A} != w {
				if diff == 0 {
					t.Errorf("pixel (%d, %d) is %v, golden %v", x, y, c, w)
				}
				diff++
			}
		}
	}
	if diff > 0 {
		t.Fatalf("%d pixels differ from %s (rerun with -update after checking the new image)", diff, path)
	}
}

func decode(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func rgbaAt(img image.Image, x, y int) (c [4]uint8) {
	r, g, b, a := img.At(x, y).RGBA()
	return [4]uint8{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), uint8(a >> 8)}
}

// The contour is where the scorer's own pixel map (score.Scorer.Map) crosses the
// threshold: exactly those pixels above it with a neighbour at or below it, and
// nothing when the whole map is below the threshold.
func TestOverlayContour(t *testing.T) {
	const size = 224
	for _, tc := range []struct {
		name      string
		gridN     int
		grid      []float32
		threshold float64
		contour   bool            // some contour pixels expected
		inside    image.Rectangle // all of them lie here (when contour)
	}{
		// a hot spot on grid cell (10, 3) of 14: pixels around (10*223/13, 3*223/13) = (172, 51)
		{"hot spot 14", 14, spot(14, 2, 14, 10, 3, 0.8), 10, true, image.Rect(140, 20, 205, 85)},
		// the same on a 28 grid, cell (5, 20): around (41, 165)
		{"hot spot 28", 28, spot(28, 2, 14, 5, 20, 1.6), 10, true, image.Rect(10, 130, 75, 200)},
		// a spot just above the threshold: a small contour at its peak, (112, 112), on
		// top of the maximum's cross
		{"barely above", 15, spot(15, 2, 8.5, 7, 7, 1), 10, true, image.Rect(92, 92, 133, 133)},
		// everything below the threshold, the peak included: no contour
		{"all below", 14, spot(14, 2, 7.9, 10, 3, 0.8), 10, false, image.Rectangle{}},
		// a flat map just below the threshold
		{"flat below", 14, spot(14, 9.99, 0, 0, 0, 1), 10, false, image.Rectangle{}},
		// a map above the threshold everywhere has no crossing, so no contour
		{"all above", 14, spot(14, 11, 3, 5, 5, 2), 10, false, image.Rectangle{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := score.New(score.Params{Grid: tc.gridN, Size: size, Kernel: 1, Scale: 1})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sc.ScoreFloat(tc.grid); err != nil {
				t.Fatal(err)
			}
			up := sc.Map()
			ours := make([]float32, size*size)
			if err := heatmap.Upsample(ours, tc.grid, tc.gridN, size); err != nil {
				t.Fatal(err)
			}
			for i := range up {
				if ours[i] != up[i] {
					t.Fatalf("upsampled pixel %d is %v, the scorer's %v", i, ours[i], up[i])
				}
			}
			// A black frame: a blended pixel is at most 115 a channel, never the contour's white.
			dst := image.NewRGBA(image.Rect(0, 0, size, size))
			if err := heatmap.Overlay(dst, make([]byte, size*size*3), size, tc.grid, tc.gridN, tc.threshold); err != nil {
				t.Fatal(err)
			}
			n := 0
			for y := 0; y < size; y++ {
				for x := 0; x < size; x++ {
					v := float64(up[y*size+x])
					at := func(x, y int) float64 { return float64(up[y*size+x]) }
					want := v > tc.threshold && ((x > 0 && at(x-1, y) <= tc.threshold) || (x+1 < size && at(x+1, y) <= tc.threshold) ||
						(y > 0 && at(x, y-1) <= tc.threshold) || (y+1 < size && at(x, y+1) <= tc.threshold))
					c := dst.RGBAAt(x, y)
					if c == heatmap.MarkerColor || (c.R == 0 && c.G == 0 && c.B == 0) {
						if want {
							t.Fatalf("contour pixel (%d, %d) under the maximum's cross", x, y)
						}
						continue // the maximum's cross
					}
					got := c == heatmap.ContourColor
					if got != want {
						t.Fatalf("pixel (%d, %d) value %v: contour %v, want %v", x, y, v, got, want)
					}
					if got {
						n++
						if !(image.Point{x, y}).In(tc.inside) {
							t.Fatalf("contour pixel (%d, %d) outside %v", x, y, tc.inside)
						}
					}
				}
			}
			if (n > 0) != tc.contour {
				t.Fatalf("%d contour pixels, want some: %v", n, tc.contour)
			}
		})
	}
}

// The maximum's cross is centred on the map's maximum, and a colour on the scale
// means the same value whatever the frame's other values: a pixel of value v gets
// turbo[v/(2 threshold)] in every frame.
func TestOverlayMarkerAndFixedScale(t *testing.T) {
	const size, gridN = 224, 14
	grid := spot(gridN, 3, 10, 2, 11, 1) // peak on grid cell (2, 11): pixel (2*223/13, 11*223/13) = (34, 189)
	dst := image.NewRGBA(image.Rect(0, 0, size, size))
	if err := heatmap.Overlay(dst, make([]byte, size*size*3), size, grid, gridN, 10); err != nil {
		t.Fatal(err)
	}
	if c := dst.RGBAAt(34, 189); c != heatmap.MarkerColor {
		t.Fatalf("maximum at (34, 189) is %v, want the marker", c)
	}
	// Two maps that share a corner value (3) give that corner the same colour.
	other := spot(gridN, 3, 30, 12, 2, 2)
	dst2 := image.NewRGBA(image.Rect(0, 0, size, size))
	if err := heatmap.Overlay(dst2, make([]byte, size*size*3), size, other, gridN, 10); err != nil {
		t.Fatal(err)
	}
	if a, b := dst.RGBAAt(size-1, 0), dst2.RGBAAt(0, size-1); a != b {
		t.Fatalf("the same value coloured %v in one frame and %v in another", a, b)
	}
}

// A reused destination: no allocation per overlay.
func TestOverlayDoesNotAllocate(t *testing.T) {
	const size, gridN = 224, 14
	frame, grid := synthFrame(size), spot(gridN, 4, 12, 9, 4, 1.4)
	dst := image.NewRGBA(image.Rect(0, 0, size, size))
	up := make([]float32, size*size)
	n := testing.AllocsPerRun(20, func() {
		if err := heatmap.Overlay(dst, frame, size, grid, gridN, 10); err != nil {
			t.Fatal(err)
		}
		if err := heatmap.Upsample(up, grid, gridN, size); err != nil {
			t.Fatal(err)
		}
		if err := heatmap.Frame(dst, frame, size); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per overlay", n)
	}
}

// Bad arguments are refused, never drawn out of bounds.
func TestOverlayRefuses(t *testing.T) {
	frame, grid := synthFrame(32), spot(4, 1, 1, 1, 1, 1)
	ok := image.NewRGBA(image.Rect(0, 0, 32, 32))
	for _, tc := range []struct {
		name  string
		dst   *image.RGBA
		frame []byte
		size  int
		grid  []float32
		gridN int
		thr   float64
	}{
		{"short frame", ok, frame[:10], 32, grid, 4, 1},      // fewer bytes than 32x32x3
		{"grid size", ok, frame, 32, grid, 5, 1},             // 16 values are not 5x5
		{"grid larger than frame", ok, frame, 3, grid, 4, 1}, // a map finer than the frame
		{"wrong destination", image.NewRGBA(image.Rect(0, 0, 31, 32)), frame, 32, grid, 4, 1},
		{"nil destination", nil, frame, 32, grid, 4, 1},             // nothing to draw into
		{"zero threshold", ok, frame, 32, grid, 4, 0},               // no scale
		{"NaN threshold", ok, frame, 32, grid, 4, math.NaN()},       // no scale
		{"infinite threshold", ok, frame, 32, grid, 4, math.Inf(1)}, // no scale
		{"too large", ok, frame, heatmap.MaxSize + 1, grid, 4, 1},   // past the row buffers
	} {
		if err := heatmap.Overlay(tc.dst, tc.frame, tc.size, tc.grid, tc.gridN, tc.thr); !errors.Is(err, heatmap.ErrArgs) {
			t.Errorf("%s: %v, want ErrArgs", tc.name, err)
		}
	}
}

// A frame written by Frame and EncodePNG decodes to the same RGB bytes, as 8-bit RGB.
func TestFramePNGIsLossless(t *testing.T) {
	const size = 224
	frame := synthFrame(size)
	dst := image.NewRGBA(image.Rect(0, 0, size, size))
	if err := heatmap.Frame(dst, frame, size); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := heatmap.EncodePNG(&b, dst); err != nil {
		t.Fatal(err)
	}
	if ct := b.Bytes()[25]; ct != 2 { // IHDR colour type: 2 is truecolour RGB, no alpha
		t.Fatalf("PNG colour type %d, want 2 (RGB)", ct)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			c, i := rgbaAt(img, x, y), 3*(y*size+x)
			if c[0] != frame[i] || c[1] != frame[i+1] || c[2] != frame[i+2] || c[3] != 255 {
				t.Fatalf("pixel (%d, %d) is %v, frame has %v", x, y, c, frame[i:i+3])
			}
		}
	}
}

func BenchmarkOverlay(b *testing.B) {
	const size = 224
	for _, gridN := range []int{14, 28} {
		b.Run(map[int]string{14: "224x224_grid14", 28: "224x224_grid28"}[gridN], func(b *testing.B) {
			frame, grid := synthFrame(size), spot(gridN, 4, 12, float64(gridN)/2, float64(gridN)/3, float64(gridN)/10)
			dst := image.NewRGBA(image.Rect(0, 0, size, size))
			b.ReportAllocs()
			for b.Loop() {
				if err := heatmap.Overlay(dst, frame, size, grid, gridN, 10); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e6/float64(b.N), "ms/overlay")
		})
	}
}

func BenchmarkEncodePNG(b *testing.B) {
	const size = 224
	dst := image.NewRGBA(image.Rect(0, 0, size, size))
	if err := heatmap.Overlay(dst, synthFrame(size), size, spot(14, 4, 12, 7, 5, 1.4), 14, 10); err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := heatmap.EncodePNG(&buf, dst); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e6/float64(b.N), "ms/encode")
	b.ReportMetric(float64(buf.Len()), "bytes")
}
