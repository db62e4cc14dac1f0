package capture_test

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"strings"
	"testing"

	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/internal/testlib"
)

// Whatever bytes an image file holds: no panic and no huge allocation (a declared size
// over MaxPixels is refused before decoding), and a decoded image fits to exactly the
// model's W*H*3 bytes. Seeds: small PNGs and a JPEG in several modes, a demo frame, a
// bomb's header, garbage.
func FuzzDecodeImage(f *testing.F) {
	var buf bytes.Buffer
	rgba := image.NewRGBA(image.Rect(0, 0, 5, 3))
	rgba.Set(1, 1, color.RGBA{10, 20, 30, 128})
	png.Encode(&buf, rgba)
	f.Add(append([]byte(nil), buf.Bytes()...))
	buf.Reset()
	png.Encode(&buf, image.NewGray16(image.Rect(0, 0, 3, 7)))
	f.Add(append([]byte(nil), buf.Bytes()...))
	buf.Reset()
	jpeg.Encode(&buf, rgba, nil)
	f.Add(append([]byte(nil), buf.Bytes()...))
	if b, err := os.ReadFile(testlib.Demo("frames", "000_good.png")); err == nil {
		f.Add(b)
	}
	f.Add(pngHeader(30000, 30000))
	f.Add([]byte("GIF89a"))
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := capture.DecodeImage(b, "x.png")
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("not one line: %q", err)
			}
			return
		}
		r := img.Bounds()
		if int64(r.Dx())*int64(r.Dy()) > capture.MaxPixels {
			t.Fatalf("decoded %v, over the limit", r)
		}
		px, err := capture.FitRGB(img, capture.Size{W: 8, H: 8}, capture.FitResize, "x.png")
		if err != nil || len(px) != 8*8*3 {
			t.Fatalf("fit: %d bytes, %v", len(px), err)
		}
	})
}
