// Package capture provides frame sources: each frame carries a sequence number, a
// monotonic timestamp and RGB pixels already fitted to the model's input size.
package capture

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // replay reads JPEG
	_ "image/png"  // and PNG
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/adtrd/adtrd/capture/spec"
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

// Fit is how a frame of another size reaches the model's input size (spec.Fit, the
// one definition config reads too; named here for the preprocessing contract's callers).
type Fit = spec.Fit

const (
	FitResize = spec.FitResize // bilinear resize of the whole frame
	FitCrop   = spec.FitCrop   // centre crop; the frame must be at least as large
)

// Frame is one captured frame. Pixels is W*H*3 RGB, valid until Release: a pooled
// source (a camera) reuses the buffer afterwards, so the consumer copies the pixels
// into the model's input and then calls Release, exactly once. Frames of unpooled
// sources (replay) stay valid and their Release does nothing. Err is set for a frame
// that could not be read, which the pipeline still decides (by the fail-safe rule)
// rather than skipping.
type Frame struct {
	Seq    uint64
	Time   time.Time // capture time: time.Now() at arrival, carrying the monotonic clock
	Name   string
	Pixels []byte
	Err    error
	pool   *Pool
	idx    int // buffer index + 1; 0: not pooled
}

// Release hands a pooled frame's buffer back to its source; the frame's Pixels must
// not be used afterwards. Safe on unpooled frames; a second call does nothing.
func (f *Frame) Release() {
	if f.pool != nil && f.idx > 0 {
		f.pool.put(f.idx - 1)
	}
	f.pool, f.idx, f.Pixels = nil, 0, nil
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

// MaxJPEGScans bounds a progressive JPEG's scans. Each scan is decoded over the whole
// image, so a small file that repeats one scan many times takes minutes to decode (a
// time bomb of the decompression-bomb kind); libjpeg's own progression scripts use 10
// scans for colour, 6 for grey. The toolkit applies the same limit.
const MaxJPEGScans = 32

// jpegScans counts a JPEG's start-of-scan segments by walking its markers (no
// decoding); 0 for anything that is not a JPEG, and it stops at whatever it cannot
// walk, leaving the error to the decoder.
func jpegScans(b []byte) int {
	if len(b) < 2 || b[0] != 0xFF || b[1] != 0xD8 {
		return 0
	}
	scans := 0
	for i := 2; i+1 < len(b); {
		if b[i] != 0xFF {
			return scans
		}
		m := b[i+1]
		switch {
		case m == 0xFF: // fill byte
			i++
			continue
		case m == 0xD9: // end of image
			return scans
		case m == 0x01 || (m >= 0xD0 && m <= 0xD7): // markers without a length
			i += 2
			continue
		}
		if i+3 >= len(b) {
			return scans
		}
		n := int(b[i+2])<<8 | int(b[i+3])
		if n < 2 {
			return scans
		}
		i += 2 + n
		if m != 0xDA {
			continue
		}
		scans++
		// entropy-coded data runs to the next marker that is not a stuffed 0xFF00 or a
		// restart marker
		for i+1 < len(b) && (b[i] != 0xFF || b[i+1] == 0 || (b[i+1] >= 0xD0 && b[i+1] <= 0xD7)) {
			i++
		}
	}
	return scans
}

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
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: not a readable image (%v)", ErrFrame, name, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
		return nil, fmt.Errorf("%w: %s: declares %dx%d pixels, over the %d M limit", ErrFrame, name, cfg.Width, cfg.Height, MaxPixels>>20)
	}
	if n := jpegScans(b); format == "jpeg" && n > MaxJPEGScans {
		return nil, fmt.Errorf("%w: %s: a JPEG of %d scans, over the %d an image may have", ErrFrame, name, n, MaxJPEGScans)
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
