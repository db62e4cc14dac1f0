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
	tmp            []byte // the horizontal pass's rows, when both passes run
}

func newResizer(sw, sh, dw, dh int) *resizer {
	r := &resizer{sw: sw, sh: sh, dw: dw, dh: dh}
	if sw == dw && sh == dh {
		return r
	}
	r.ch, r.cv = precomputeCoeffs(sw, dw), precomputeCoeffs(sh, dh)
	if sw != dw && sh != dh {
		first := r.cv.bounds[0]
		last := r.cv.bounds[dh*2-2] + r.cv.bounds[dh*2-1]
		r.tmp = make([]byte, dw*(last-first)*3)
	}
	return r
}

// resize writes src (sw x sh RGB) resized into dst (dw x dh RGB).
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
	tmp, tw, tOff := src, sw, 0
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
			in := src[(y+first)*sw*3:]
			out := tmp[y*dw*3:]
			for xx := 0; xx < dw; xx++ {
				xmin, n := ch.bounds[xx*2], ch.bounds[xx*2+1]
				k := ch.k[xx*ch.ksize:]
				s0, s1, s2 := int32(1<<(precisionBits-1)), int32(1<<(precisionBits-1)), int32(1<<(precisionBits-1))
				for x := 0; x < n; x++ {
					p := (x + xmin) * 3
					s0 += int32(in[p]) * k[x]
					s1 += int32(in[p+1]) * k[x]
					s2 += int32(in[p+2]) * k[x]
				}
				out[xx*3], out[xx*3+1], out[xx*3+2] = clip8(s0), clip8(s1), clip8(s2)
			}
		}
		if !needV {
			return
		}
		tw, tOff = dw, first
	}
	for yy := 0; yy < dh; yy++ {
		ymin, n := cv.bounds[yy*2]-tOff, cv.bounds[yy*2+1]
		k := cv.k[yy*cv.ksize:]
		out := dst[yy*dw*3:]
		for xx := 0; xx < dw; xx++ {
			s0, s1, s2 := int32(1<<(precisionBits-1)), int32(1<<(precisionBits-1)), int32(1<<(precisionBits-1))
			for y := 0; y < n; y++ {
				p := ((y+ymin)*tw + xx) * 3
				s0 += int32(tmp[p]) * k[y]
				s1 += int32(tmp[p+1]) * k[y]
				s2 += int32(tmp[p+2]) * k[y]
			}
			out[xx*3], out[xx*3+1], out[xx*3+2] = clip8(s0), clip8(s1), clip8(s2)
		}
	}
}
