// Package capture provides frame sources: each frame carries a sequence number, a
// monotonic timestamp and RGB pixels already fitted to the model's input size.
package capture

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/draw"
	_ "image/jpeg" // replay reads JPEG
	_ "image/png"  // and PNG
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/adtrd/adtrd/internal/safefile"
)

// Sentinel errors.
var (
	ErrSource = errors.New("capture: source")
	ErrFrame  = errors.New("capture: frame")
	ErrEOF    = errors.New("capture: end of frames")
	// ErrClosed: the source was closed.
	ErrClosed = errors.New("capture: source closed")
)

// Fit is how a frame of another size reaches the model's input size.
type Fit int

const (
	FitResize Fit = iota // bilinear resize of the whole frame
	FitCrop              // centre crop; the frame must be at least as large
)

func (f Fit) String() string {
	switch f {
	case FitResize:
		return "resize"
	case FitCrop:
		return "crop"
	}
	return fmt.Sprintf("fit(%d)", int(f))
}

// Frame is one captured frame. Pixels is W*H*3 RGB, owned by the source and valid
// until the source is closed; Err is set for a frame that could not be read, which
// the pipeline still decides (by the fail-safe rule) rather than skipping.
type Frame struct {
	Seq    uint64
	Time   time.Time // time.Now(): carries the monotonic clock reading
	Name   string
	Pixels []byte
	Err    error
}

// Size is the model input a source fits frames to.
type Size struct{ W, H int }

var imageExts = map[string]bool{".png": true, ".jpg": true, ".jpeg": true}

// ListImages returns the images of a directory sorted by name, or the file itself.
func ListImages(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSource, err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSource, err)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && imageExts[strings.ToLower(filepath.Ext(e.Name()))] {
			out = append(out, filepath.Join(path, e.Name()))
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s: no .png or .jpg images", ErrSource, path)
	}
	return out, nil
}

// Limits on an image file before it is decoded. A PNG can declare 30000x30000 pixels
// in 109 KB and its decoder then allocates 3.6 GB; a path can name a FIFO or a device
// whose read never ends. MaxPixels is the largest width x height decoded (a 48 MP
// machine-vision sensor has 8192x5460 = 44.7 M); MaxFileBytes the largest file read.
const (
	MaxPixels    = 48 << 20
	MaxFileBytes = 256 << 20
)

// ReadImageFile reads a regular file of at most MaxFileBytes. Anything else (a FIFO,
// a device, a directory) is refused without opening it for a read that could block.
func ReadImageFile(path string) ([]byte, error) {
	b, err := safefile.Read(path, MaxFileBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFrame, err)
	}
	return b, nil
}

// DecodeImage decodes PNG or JPEG bytes, after checking the size the header declares
// against MaxPixels (image.DecodeConfig reads only the header).
func DecodeImage(b []byte, name string) (image.Image, error) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: not a readable image (%v)", ErrFrame, name, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
		return nil, fmt.Errorf("%w: %s: declares %dx%d pixels, over the %d M limit", ErrFrame, name, cfg.Width, cfg.Height, MaxPixels>>20)
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: not a readable image (%v)", ErrFrame, name, err)
	}
	return img, nil
}

// LoadRGB decodes an image file and fits it to size as packed RGB.
func LoadRGB(path string, size Size, fit Fit) ([]byte, error) {
	b, err := ReadImageFile(path)
	if err != nil {
		return nil, err
	}
	img, err := DecodeImage(b, path)
	if err != nil {
		return nil, err
	}
	return FitRGB(img, size, fit, path)
}

// FitRGB converts img to packed RGB at size, by resize or centre crop.
func FitRGB(img image.Image, size Size, fit Fit, name string) ([]byte, error) {
	b := img.Bounds()
	rgba := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(rgba, rgba.Bounds(), img, b.Min, draw.Src)
	w, h := b.Dx(), b.Dy()
	out := make([]byte, size.W*size.H*3)
	switch {
	case w == size.W && h == size.H:
		for i, j := 0, 0; i < len(out); i, j = i+3, j+4 {
			out[i], out[i+1], out[i+2] = rgba.Pix[j], rgba.Pix[j+1], rgba.Pix[j+2]
		}
	case fit == FitCrop:
		if w < size.W || h < size.H {
			return nil, fmt.Errorf("%w: %s: %dx%d is smaller than the model's %dx%d (use fit: resize)", ErrFrame, name, w, h, size.W, size.H)
		}
		x0, y0 := (w-size.W)/2, (h-size.H)/2
		for y := 0; y < size.H; y++ {
			for x := 0; x < size.W; x++ {
				s := rgba.PixOffset(x0+x, y0+y)
				d := (y*size.W + x) * 3
				out[d], out[d+1], out[d+2] = rgba.Pix[s], rgba.Pix[s+1], rgba.Pix[s+2]
			}
		}
	default:
		resizeBilinear(rgba, out, size)
	}
	return out, nil
}

// resizeBilinear uses half-pixel centres (as PIL and OpenCV do for upscaling).
func resizeBilinear(src *image.RGBA, dst []byte, size Size) {
	w, h := src.Bounds().Dx(), src.Bounds().Dy()
	for y := 0; y < size.H; y++ {
		y0, y1, wy := sample(y, h, size.H)
		for x := 0; x < size.W; x++ {
			x0, x1, wx := sample(x, w, size.W)
			for c := 0; c < 3; c++ {
				p00 := float64(src.Pix[src.PixOffset(x0, y0)+c])
				p01 := float64(src.Pix[src.PixOffset(x1, y0)+c])
				p10 := float64(src.Pix[src.PixOffset(x0, y1)+c])
				p11 := float64(src.Pix[src.PixOffset(x1, y1)+c])
				v := (p00*(1-wx)+p01*wx)*(1-wy) + (p10*(1-wx)+p11*wx)*wy
				dst[(y*size.W+x)*3+c] = byte(v + 0.5)
			}
		}
	}
}

// sample maps output coordinate i (of n) to the two source coordinates (of src) it
// blends and the weight of the second, with half-pixel centres.
func sample(i, src, n int) (lo, hi int, w float64) {
	f := (float64(i)+0.5)*float64(src)/float64(n) - 0.5
	lo = clamp(int(floor(f)), 0, src-1)
	hi = clamp(lo+1, 0, src-1)
	if f > 0 {
		w = f - floor(f)
	}
	return lo, hi, w
}

func floor(v float64) float64 {
	i := float64(int(v))
	if v < i {
		return i - 1
	}
	return i
}

func clamp(v, lo, hi int) int { return max(lo, min(v, hi)) }
