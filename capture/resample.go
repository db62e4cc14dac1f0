package capture

import "math"

// Pillow's bilinear resample (Image.resize(size, Image.BILINEAR), libImaging/Resample.c,
// Pillow 10.4), ported operation for operation so that the daemon and the toolkit
// produce the same bytes: a triangle filter whose support widens with the shrink
// factor (so shrinking averages every source pixel, unlike a 2-tap bilinear), float64
// coefficients normalised per output pixel and rounded to 22-bit fixed point, a
// horizontal pass into an 8-bit image and then a vertical pass. The corpus test
// (testdata/preprocess) holds both sides to it.

const precisionBits = 32 - 8 - 2

// resampleCoeffs is precompute_coeffs + normalize_coeffs_8bpc for one axis: for each
// output index, the first source index, the count of taps and their fixed-point weights.
type resampleCoeffs struct {
	ksize  int
	bounds []int // 2 per output: xmin, count
	k      []int32
}

func bilinearFilter(x float64) float64 {
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return 1 - x
	}
	return 0
}

func precomputeCoeffs(inSize, outSize int) resampleCoeffs {
	scale := float64(inSize) / float64(outSize)
	filterscale := max(scale, 1)
	support := 1.0 * filterscale
	ksize := int(math.Ceil(support))*2 + 1
	c := resampleCoeffs{ksize: ksize, bounds: make([]int, outSize*2), k: make([]int32, outSize*ksize)}
	pre := make([]float64, ksize)
	for xx := 0; xx < outSize; xx++ {
		center := (float64(xx) + 0.5) * scale
		ww := 0.0
		ss := 1.0 / filterscale
		xmin := int(center - support + 0.5) // C's (int): truncation toward zero
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		xmax -= xmin
		for x := 0; x < xmax; x++ {
			w := bilinearFilter((float64(x+xmin) - center + 0.5) * ss)
			pre[x] = w
			ww += w
		}
		for x := 0; x < xmax; x++ {
			if ww != 0 {
				pre[x] /= ww
			}
		}
		for x := 0; x < ksize; x++ {
			v := 0.0
			if x < xmax {
				v = pre[x]
			}
			if v < 0 {
				c.k[xx*ksize+x] = int32(-0.5 + v*(1<<precisionBits))
			} else {
				c.k[xx*ksize+x] = int32(0.5 + v*(1<<precisionBits))
			}
		}
		c.bounds[xx*2], c.bounds[xx*2+1] = xmin, xmax
	}
	return c
}

func clip8(v int32) byte {
	v >>= precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return byte(v)
}

// resizePillow resizes packed RGB src (sw x sh) into dst (dw x dh, len dw*dh*3).
func resizePillow(src []byte, sw, sh int, dst []byte, dw, dh int) {
	newResizer(sw, sh, dw, dh).resize(src, dst)
}

// resizer is resizePillow for one pair of sizes, its coefficients and the
// intermediate image made once, so that a camera's frames resize without allocating.
type resizer struct {
	sw, sh, dw, dh int
	ch, cv         resampleCoeffs
	tmp            []byte  // the horizontal pass's rows, when both passes run
	acc            []int32 // the vertical pass's sums for one output row
}

func newResizer(sw, sh, dw, dh int) *resizer {
	r := &resizer{sw: sw, sh: sh, dw: dw, dh: dh}
	if sw == dw && sh == dh {
		return r
	}
	r.ch, r.cv = precomputeCoeffs(sw, dw), precomputeCoeffs(sh, dh)
	r.acc = make([]int32, dw*3)
	if sw != dw && sh != dh {
		first := r.cv.bounds[0]
		last := r.cv.bounds[dh*2-2] + r.cv.bounds[dh*2-1]
		r.tmp = make([]byte, dw*(last-first)*3)
	}
	return r
}

// resize writes src (sw x sh RGB) resized into dst (dw x dh RGB). The sums are
// Pillow's, in integers, so the order they are added in does not change the result:
// the vertical pass adds whole rows (sequential memory) instead of one pixel's column.
func (r *resizer) resize(src, dst []byte) {
	sw, sh, dw, dh := r.sw, r.sh, r.dw, r.dh
	needH, needV := sw != dw, sh != dh
	if !needH && !needV {
		copy(dst, src)
		return
	}
	ch, cv := r.ch, r.cv
	// Rows the vertical pass reads (ImagingResampleInner's ybox_first/last).
	first := cv.bounds[0]
	last := cv.bounds[dh*2-2] + cv.bounds[dh*2-1]
	tmp, tOff := src, 0
	const half = int32(1 << (precisionBits - 1))
	if needH {
		rows := last - first
		if !needV {
			first, rows = 0, sh
		}
		tmp = r.tmp
		if !needV {
			tmp = dst
		}
		for y := 0; y < rows; y++ {
			in := src[(y+first)*sw*3:][:sw*3]
			out := tmp[y*dw*3:][:dw*3]
			for xx := 0; xx < dw; xx++ {
				xmin, n := ch.bounds[xx*2], ch.bounds[xx*2+1]
				k := ch.k[xx*ch.ksize:][:n]
				px := in[xmin*3:][:n*3]
				s0, s1, s2 := half, half, half
				for x, w := range k {
					p := px[x*3:][:3]
					s0 += int32(p[0]) * w
					s1 += int32(p[1]) * w
					s2 += int32(p[2]) * w
				}
				o := out[xx*3:][:3]
				o[0], o[1], o[2] = clip8(s0), clip8(s1), clip8(s2)
			}
		}
		if !needV {
			return
		}
		tOff = first
	}
	// Here the rows are dw wide: tmp's, or src's when only the height changes.
	acc := r.acc[:dw*3]
	for yy := 0; yy < dh; yy++ {
		ymin, n := cv.bounds[yy*2]-tOff, cv.bounds[yy*2+1]
		k := cv.k[yy*cv.ksize:][:n]
		for i := range acc {
			acc[i] = half
		}
		for y, w := range k {
			row := tmp[(y+ymin)*dw*3:][:len(acc)]
			for i, v := range row {
				acc[i] += int32(v) * w
			}
		}
		out := dst[yy*dw*3:][:len(acc)]
		for i, a := range acc {
			out[i] = clip8(a)
		}
	}
}
