// Package heatmap renders a decision's anomaly map over the frame the model saw: the
// map upsampled to the frame exactly as the scorer upsamples it (package score), in a
// fixed colour map on a fixed scale, so that a colour means the same score on every
// frame, with the threshold's contour and the map's maximum marked.
//
// Colour scale: a map value v is coloured turbo[v / (2 x threshold)], clipped to
// [0, 1]: the threshold is the middle of the scale (green), twice the threshold and
// above dark red, 0 and below dark blue (see turbo.go). The colour is blended over
// the frame with opacity Alpha.
//
// Contour: the pixels whose upsampled value is above the threshold and that have a
// 4-neighbour at or below it, drawn in ContourColor; where the map is above the
// threshold the image score (a pooled mean of the same map) may be too.
//
// Maximum: a cross of MarkerColor with a black edge, centred on the first pixel (in
// row-major order) of the upsampled map's maximum, drawn under the contour (a small
// region above the threshold stays visible).
package heatmap

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"sync"
)

// ErrArgs reports arguments that do not describe a frame and its map.
var ErrArgs = errors.New("heatmap: bad arguments")

// MaxSize is the largest frame side Overlay draws (its row buffers live on the stack).
const MaxSize = 1024

// Alpha is the colour map's opacity over the frame: 115/256 (0.449), in integer
// arithmetic so that an overlay is the same bytes on every machine.
const Alpha = alpha8 / 256.0

const alpha8 = 115

// The marks' colours: none of them is in the colour map.
var (
	ContourColor = color.RGBA{255, 255, 255, 255}
	MarkerColor  = color.RGBA{255, 0, 255, 255}
	markerEdge   = color.RGBA{0, 0, 0, 255}
)

// markerArm is the length of each arm of the maximum's cross, in pixels.
const markerArm = 6

// span is where output coordinate i samples the grid: between i0 and i1, weight w on i1.
type span struct {
	i0, i1 int32
	w      float32
}

// spanAt is the scorer's bilinear mapping with aligned corners (score.New): output i of
// s samples the source of g at i*(g-1)/(s-1), in float64, with a float32 weight.
func spanAt(i, g, s int) span {
	pos := 0.0
	if s > 1 && g > 1 {
		pos = float64(i) * float64(g-1) / float64(s-1)
	}
	lo := min(int(math.Floor(pos)), g-1)
	return span{int32(lo), int32(min(lo+1, g-1)), float32(pos - float64(lo))}
}

// lerp is a*(1-w) + b*w rounded as the scorer rounds it; the conversions keep the
// compiler from fusing it into one multiply-add on machines that have one, so that
// every machine computes the same map.
func lerp(a, b, w float32) float32 { return float32(a*(1-w)) + float32(b*w) }

// upRow upsamples row y of the g x g grid to line (len s): along y into tmp (len g),
// then along x, the order the scorer uses.
func upRow(line, tmp, grid []float32, g int, ys span, cols []span) {
	a, b := int(ys.i0)*g, int(ys.i1)*g
	for x := range tmp {
		tmp[x] = lerp(grid[a+x], grid[b+x], ys.w)
	}
	for x := range line {
		c := cols[x]
		line[x] = lerp(tmp[c.i0], tmp[c.i1], c.w)
	}
}

// Upsample writes the gridN x gridN map grid, upsampled bilinearly to size x size
// (row-major), into dst: the same values as score.Scorer.Map for that map. It
// allocates nothing.
func Upsample(dst, grid []float32, gridN, size int) error {
	if err := checkMap(grid, gridN, size); err != nil {
		return err
	}
	if len(dst) != size*size {
		return fmt.Errorf("%w: dst has %d values, want %d", ErrArgs, len(dst), size*size)
	}
	var colBuf [MaxSize]span
	var tmpBuf [MaxSize]float32
	cols, tmp := colBuf[:size], tmpBuf[:gridN]
	for i := range cols {
		cols[i] = spanAt(i, gridN, size)
	}
	for y := 0; y < size; y++ {
		upRow(dst[y*size:(y+1)*size], tmp, grid, gridN, spanAt(y, gridN, size), cols)
	}
	return nil
}

func checkMap(grid []float32, gridN, size int) error {
	switch {
	case size < 1 || size > MaxSize:
		return fmt.Errorf("%w: size %d outside 1..%d", ErrArgs, size, MaxSize)
	case gridN < 1 || gridN > size:
		return fmt.Errorf("%w: grid %d outside 1..%d", ErrArgs, gridN, size)
	case len(grid) != gridN*gridN:
		return fmt.Errorf("%w: map has %d values, want %dx%d", ErrArgs, len(grid), gridN, gridN)
	}
	return nil
}

// Overlay draws into dst (size x size, any origin) the frame (size x size packed RGB,
// 3 bytes a pixel: the model's input) under its anomaly map (gridN x gridN real
// values, row-major) as the package comment describes, for threshold (a positive
// finite score). It allocates nothing: reuse dst from frame to frame.
func Overlay(dst *image.RGBA, frame []byte, size int, grid []float32, gridN int, threshold float64) error {
	if err := checkMap(grid, gridN, size); err != nil {
		return err
	}
	switch {
	case len(frame) != size*size*3:
		return fmt.Errorf("%w: frame has %d bytes, want %dx%dx3", ErrArgs, len(frame), size, size)
	case dst == nil || dst.Rect.Dx() != size || dst.Rect.Dy() != size:
		return fmt.Errorf("%w: destination is not %dx%d", ErrArgs, size, size)
	case !(threshold > 0) || math.IsInf(threshold, 0):
		return fmt.Errorf("%w: threshold %v: want a positive finite score", ErrArgs, threshold)
	}
	var colBuf [MaxSize]span
	var tmpBuf [MaxSize]float32
	var lines [3][MaxSize]float32
	cols, tmp := colBuf[:size], tmpBuf[:gridN]
	for i := range cols {
		cols[i] = spanAt(i, gridN, size)
	}
	// prev, cur and next rows of the upsampled map, rotated as y moves down
	prev, cur, next := lines[0][:size], lines[1][:size], lines[2][:size]
	upRow(cur, tmp, grid, gridN, spanAt(0, gridN, size), cols)
	k := 255 / (2 * threshold) // value -> colour index
	best, bx, by := math.Inf(-1), -1, -1
	for y := 0; y < size; y++ {
		if y+1 < size {
			upRow(next, tmp, grid, gridN, spanAt(y+1, gridN, size), cols)
		}
		src := frame[y*size*3 : (y+1)*size*3]
		row := dst.Pix[dst.PixOffset(dst.Rect.Min.X, dst.Rect.Min.Y+y):][:size*4]
		for x := 0; x < size; x++ {
			v := float64(cur[x])
			if v > best { // NaN never is
				best, bx, by = v, x, y
			}
			p, q := row[4*x:4*x+4:4*x+4], src[3*x:3*x+3:3*x+3]
			if v > threshold &&
				((x > 0 && float64(cur[x-1]) <= threshold) || (x+1 < size && float64(cur[x+1]) <= threshold) ||
					(y > 0 && float64(prev[x]) <= threshold) || (y+1 < size && float64(next[x]) <= threshold)) {
				p[0], p[1], p[2], p[3] = ContourColor.R, ContourColor.G, ContourColor.B, 255
				continue
			}
			c := &turbo[index(v, k)]
			p[0], p[1], p[2], p[3] = blend(c[0], q[0]), blend(c[1], q[1]), blend(c[2], q[2]), 255
		}
		prev, cur, next = cur, next, prev
	}
	if bx >= 0 {
		mark(dst, bx, by)
	}
	return nil
}

// index is v's colour: round(v x k) clipped to 0..255; NaN is 0.
func index(v, k float64) int {
	n := float64(v*k) + 0.5
	switch {
	case !(n > 0):
		return 0
	case n >= 255:
		return 255
	}
	return int(n)
}

// blend is the colour c at opacity Alpha over the frame's f, rounded.
func blend(c, f uint8) uint8 {
	return uint8((int(c)*alpha8 + int(f)*(256-alpha8) + 128) >> 8)
}

// mark draws the maximum's cross at (x, y) (relative to dst's origin): black arms
// three pixels wide, then MarkerColor arms one pixel wide on them, under the contour.
func mark(dst *image.RGBA, x, y int) {
	o := dst.Rect.Min
	for _, pass := range [2]struct {
		c     color.RGBA
		width int
	}{{markerEdge, 1}, {MarkerColor, 0}} {
		for d := -markerArm; d <= markerArm; d++ {
			for w := -pass.width; w <= pass.width; w++ {
				set(dst, o.X+x+d, o.Y+y+w, pass.c)
				set(dst, o.X+x+w, o.Y+y+d, pass.c)
			}
		}
	}
}

// set colours pixel (x, y) c, unless it is outside dst or on the contour (a blended
// pixel is never pure white: no colour of the map is), which stays on top.
func set(dst *image.RGBA, x, y int, c color.RGBA) {
	if (image.Point{x, y}).In(dst.Rect) {
		i := dst.PixOffset(x, y)
		if p := dst.Pix[i : i+4 : i+4]; p[0] == ContourColor.R && p[1] == ContourColor.G && p[2] == ContourColor.B {
			return
		}
		dst.Pix[i], dst.Pix[i+1], dst.Pix[i+2], dst.Pix[i+3] = c.R, c.G, c.B, c.A
	}
}

// Frame copies the model input frame (size x size packed RGB) into dst (size x size,
// opaque), so that EncodePNG writes it as 8-bit RGB, losslessly: decoding that file
// (the daemon's capture or the toolkit's Pillow) gives the same bytes back.
func Frame(dst *image.RGBA, frame []byte, size int) error {
	switch {
	case size < 1 || len(frame) != size*size*3:
		return fmt.Errorf("%w: frame has %d bytes, want %dx%dx3", ErrArgs, len(frame), size, size)
	case dst == nil || dst.Rect.Dx() != size || dst.Rect.Dy() != size:
		return fmt.Errorf("%w: destination is not %dx%d", ErrArgs, size, size)
	}
	for y := 0; y < size; y++ {
		src := frame[y*size*3 : (y+1)*size*3]
		row := dst.Pix[dst.PixOffset(dst.Rect.Min.X, dst.Rect.Min.Y+y):][:size*4]
		for x := 0; x < size; x++ {
			row[4*x], row[4*x+1], row[4*x+2], row[4*x+3] = src[3*x], src[3*x+1], src[3*x+2], 255
		}
	}
	return nil
}

// encoder is shared: its buffer pool keeps the compressor and row buffers between
// calls, so an encode allocates little. An opaque *image.RGBA is written as 8-bit RGB.
var encoder = png.Encoder{CompressionLevel: png.BestSpeed, BufferPool: &bufferPool{}}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() *png.EncoderBuffer {
	e, _ := b.p.Get().(*png.EncoderBuffer)
	return e
}

func (b *bufferPool) Put(e *png.EncoderBuffer) { b.p.Put(e) }

// EncodePNG writes img to w as PNG (fastest compression, lossless), reusing the
// encoder's buffers between calls; safe for concurrent use.
func EncodePNG(w io.Writer, img image.Image) error { return encoder.Encode(w, img) }
