package capture

import (
	"fmt"
	"image"
	"image/color"
)

// The preprocessing contract (README "One preprocessing"; the toolkit's
// adtr/data.py implements the same, and the corpus in testdata/preprocess holds both
// to identical bytes): a decoded file becomes 8-bit RGB by
//
//   - grey (1, 2, 4, 8 bit): the value on all three channels;
//   - 16-bit samples (grey, RGB, with or without alpha): the high byte (v >> 8), as
//     Pillow's PNG reader does for 16-bit RGB;
//   - alpha (RGBA, grey+alpha, tRNS, palette transparency): dropped; the colour is
//     taken as stored, never premultiplied (a transparent frame is still the camera's
//     pixels);
//   - palette: the palette's RGB;
//   - CMYK (Adobe JPEG): Pillow's cmyk2rgb, R = 255-K - (C*(255-K))/255 rounded;
//   - EXIF orientation, gamma and ICC profiles: ignored (a fixed line camera's pixel
//     order is what the model was trained on);
//
// and then fits the model's input: resize is Pillow's antialiased bilinear
// (resample.go), crop the centre window at ((w-W)/2, (h-H)/2). Lossless files give
// identical bytes on both sides; JPEG's IDCT and chroma upsampling differ between Go
// and libjpeg-turbo, bounded and documented in the README.

// rgb8 returns img as packed 8-bit RGB by the contract above.
func rgb8(img image.Image) []byte {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := make([]byte, w*h*3)
	i := 0
	switch m := img.(type) {
	case *image.Gray:
		samples(out, m.Pix, m.Stride, m.PixOffset(b.Min.X, b.Min.Y), w, h, 1, [3]int{0, 0, 0})
	case *image.Gray16: // big-endian samples: the first byte is the high one
		samples(out, m.Pix, m.Stride, m.PixOffset(b.Min.X, b.Min.Y), w, h, 2, [3]int{0, 0, 0})
	case *image.NRGBA:
		samples(out, m.Pix, m.Stride, m.PixOffset(b.Min.X, b.Min.Y), w, h, 4, [3]int{0, 1, 2})
	case *image.NRGBA64:
		samples(out, m.Pix, m.Stride, m.PixOffset(b.Min.X, b.Min.Y), w, h, 8, [3]int{0, 2, 4})
	case *image.RGBA64:
		// image/png returns RGBA64 only for opaque 16-bit RGB, where premultiplied and
		// stored colour are the same.
		samples(out, m.Pix, m.Stride, m.PixOffset(b.Min.X, b.Min.Y), w, h, 8, [3]int{0, 2, 4})
	case *image.Paletted:
		pal := make([][3]byte, len(m.Palette))
		for j, c := range m.Palette {
			pal[j] = storedRGB(c)
		}
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for _, v := range m.Pix[m.PixOffset(b.Min.X, y):][:w] {
				var p [3]byte // an index past the palette reads as black, as in Go and Pillow
				if int(v) < len(pal) {
					p = pal[v]
				}
				out[i], out[i+1], out[i+2] = p[0], p[1], p[2]
				i += 3
			}
		}
	case *image.CMYK:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):][:4*w]
			for x := 0; x < w; x++ {
				nk := 255 - int(row[4*x+3])
				out[i], out[i+1], out[i+2] = cmyk(row[4*x], nk), cmyk(row[4*x+1], nk), cmyk(row[4*x+2], nk)
				i += 3
			}
		}
	case *image.RGBA:
		// image/png returns RGBA only for opaque 8-bit RGB; a translucent pixel from
		// another producer is un-premultiplied.
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):][:4*w]
			for x := 0; x < w; x++ {
				if a := row[4*x+3]; a == 255 {
					out[i], out[i+1], out[i+2] = row[4*x], row[4*x+1], row[4*x+2]
				} else {
					p := storedRGB(color.RGBA{row[4*x], row[4*x+1], row[4*x+2], a})
					out[i], out[i+1], out[i+2] = p[0], p[1], p[2]
				}
				i += 3
			}
		}
	case *image.YCbCr:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := m.YCbCrAt(x, y)
				out[i], out[i+1], out[i+2] = color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
				i += 3
			}
		}
	default: // anything else (no decoder here makes one): one colour at a time
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				p := storedRGB(img.At(x, y))
				out[i], out[i+1], out[i+2] = p[0], p[1], p[2]
				i += 3
			}
		}
	}
	return out
}

// samples copies w x h pixels of bpp bytes each, from pix at off with stride, taking
// the bytes at ch of each pixel as R, G, B (the high byte of a 16-bit sample).
func samples(out, pix []byte, stride, off, w, h, bpp int, ch [3]int) {
	i := 0
	for y := 0; y < h; y++ {
		row := pix[off+y*stride:][:w*bpp]
		for x := 0; x < w*bpp; x += bpp {
			out[i], out[i+1], out[i+2] = row[x+ch[0]], row[x+ch[1]], row[x+ch[2]]
			i += 3
		}
	}
}

// storedRGB is a colour's non-premultiplied 8-bit RGB.
func storedRGB(c color.Color) [3]byte {
	switch c := c.(type) {
	case color.NRGBA:
		return [3]byte{c.R, c.G, c.B}
	case color.NRGBA64:
		return [3]byte{byte(c.R >> 8), byte(c.G >> 8), byte(c.B >> 8)}
	case color.YCbCr:
		r, g, b := color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
		return [3]byte{r, g, b}
	case color.Gray:
		return [3]byte{c.Y, c.Y, c.Y}
	}
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	return [3]byte{n.R, n.G, n.B}
}

// cmyk is Pillow's cmyk2rgb for one channel: CLIP8(nk - MULDIV255(v, nk)).
func cmyk(v byte, nk int) byte {
	t := int(v)*nk + 128
	return byte(nk - ((t>>8)+t)>>8)
}

// FitRGB converts img to packed RGB at size by the preprocessing contract: resize
// (Pillow's bilinear) or centre crop.
func FitRGB(img image.Image, size Size, fit Fit, name string) ([]byte, error) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	src := rgb8(img)
	if w == size.W && h == size.H {
		return src, nil
	}
	out := make([]byte, size.W*size.H*3)
	switch fit {
	case FitCrop:
		if w < size.W || h < size.H {
			return nil, fmt.Errorf("%w: %s: %dx%d is smaller than the model's %dx%d (use fit: resize)", ErrFrame, name, w, h, size.W, size.H)
		}
		x0, y0 := (w-size.W)/2, (h-size.H)/2
		for y := 0; y < size.H; y++ {
			copy(out[y*size.W*3:(y+1)*size.W*3], src[((y0+y)*w+x0)*3:])
		}
	default:
		resizePillow(src, w, h, out, size.W, size.H)
	}
	return out, nil
}
