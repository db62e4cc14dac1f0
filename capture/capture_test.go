package capture_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/internal/testlib"
)

func writePNG(t *testing.T, path string, w, h int, at func(x, y int) color.RGBA) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetRGBA(x, y, at(x, y))
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

func TestFit(t *testing.T) {
	dir := t.TempDir()
	grad := func(x, y int) color.RGBA { return color.RGBA{uint8(x * 10), uint8(y * 10), 7, 255} }
	writePNG(t, filepath.Join(dir, "a.png"), 8, 6, grad)
	tests := []struct {
		name string
		size capture.Size
		fit  capture.Fit
		px   [3]byte // pixel (0,0)
		err  string
	}{
		// same size: a straight copy
		{"exact", capture.Size{W: 8, H: 6}, capture.FitResize, [3]byte{0, 0, 7}, ""},
		// centre crop of 4x2 starts at (2,2)
		{"crop", capture.Size{W: 4, H: 2}, capture.FitCrop, [3]byte{20, 20, 7}, ""},
		// crop cannot make a frame larger
		{"crop too small", capture.Size{W: 16, H: 16}, capture.FitCrop, [3]byte{}, "smaller than the model's 16x16"},
		// downscale 2x, Pillow's antialiased triangle: pixels 0, 1, 2 (0, 10, 20) weigh 3:3:1
		{"resize", capture.Size{W: 4, H: 3}, capture.FitResize, [3]byte{7, 7, 7}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			px, err := capture.LoadRGB(filepath.Join(dir, "a.png"), tc.size, tc.fit)
			if tc.err != "" {
				if !errors.Is(err, capture.ErrFrame) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(px) != tc.size.W*tc.size.H*3 || [3]byte(px[:3]) != tc.px {
				t.Fatalf("len %d, first pixel %v, want %v", len(px), px[:3], tc.px)
			}
		})
	}
}

func TestReplayOrderSequenceAndBadFrames(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"b.png", "a.png"} {
		writePNG(t, filepath.Join(dir, n), 4, 4, func(x, y int) color.RGBA { return color.RGBA{1, 2, 3, 255} })
	}
	os.WriteFile(filepath.Join(dir, "c.jpg"), []byte("not a jpeg"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644)
	r, err := capture.NewReplay(capture.ReplayOptions{Path: dir, Size: capture.Size{W: 4, H: 4}, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var names []string
	var last time.Time
	for i := 0; i < 4; i++ {
		f, err := r.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if f.Seq != uint64(i+1) || f.Time.Before(last) {
			t.Fatalf("frame %d: seq %d time %v", i, f.Seq, f.Time)
		}
		last = f.Time
		names = append(names, filepath.Base(f.Name))
		if filepath.Base(f.Name) == "c.jpg" && !errors.Is(f.Err, capture.ErrFrame) {
			t.Fatalf("c.jpg: err %v", f.Err)
		}
	}
	if strings.Join(names, ",") != "a.png,b.png,c.jpg,a.png" {
		t.Fatalf("order %v", names)
	}
}

func TestReplayOnceEndsAndPaces(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a.png", "b.png", "c.png"} {
		writePNG(t, filepath.Join(dir, n), 2, 2, func(x, y int) color.RGBA { return color.RGBA{A: 255} })
	}
	r, err := capture.NewReplay(capture.ReplayOptions{Path: dir, Size: capture.Size{W: 2, H: 2}, FPS: 50})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 0; i < 3; i++ {
		if _, err := r.Next(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// three frames at 50 fps: the third is due 40 ms after the first (a lower bound only)
	if el := time.Since(start); el < 40*time.Millisecond {
		t.Fatalf("3 frames at 50 fps took %v", el)
	}
	if _, err := r.Next(context.Background()); !errors.Is(err, capture.ErrEOF) {
		t.Fatalf("after the last frame: %v", err)
	}
}

func TestReplayErrors(t *testing.T) {
	_, err := capture.NewReplay(capture.ReplayOptions{Path: "/nonexistent", Size: capture.Size{W: 2, H: 2}})
	if !errors.Is(err, capture.ErrSource) {
		t.Fatalf("missing dir: %v", err)
	}
	_, err = capture.NewReplay(capture.ReplayOptions{Path: t.TempDir(), Size: capture.Size{W: 2, H: 2}})
	if !errors.Is(err, capture.ErrSource) || !strings.Contains(err.Error(), "no .png or .jpg images") {
		t.Fatalf("empty dir: %v", err)
	}
}

// Close while a pipeline still asks for frames: an error, never a panic.
func TestReplayNextAfterClose(t *testing.T) {
	r, err := capture.NewReplay(capture.ReplayOptions{Path: testlib.Demo("frames"), Loop: true, Size: capture.Size{W: 224, H: 224}})
	if err != nil {
		t.Fatal(err)
	}
	f, err := r.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := r.Next(context.Background()); !errors.Is(err, capture.ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
	if len(f.Pixels) != 224*224*3 {
		t.Fatal("a frame handed out before Close lost its pixels")
	}
}

// pngHeader is a PNG that declares w x h pixels and holds none: what a decompression
// bomb looks like to DecodeConfig (signature, IHDR, IEND, each chunk with its CRC).
func pngHeader(w, h uint32) []byte {
	chunk := func(typ string, data []byte) []byte {
		out := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
		out = append(out, typ...)
		out = append(out, data...)
		return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	}
	ihdr := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, w), h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0) // 8-bit RGB, deflate, no filter, no interlace
	b := []byte("\x89PNG\r\n\x1a\n")
	b = append(b, chunk("IHDR", ihdr)...)
	return append(b, chunk("IEND", nil)...)
}

// Files that must be refused before anything large is allocated or any read blocks,
// each a bad frame with a one-line error naming the file (issue 12, fault 2 and
// field case 11 B).
func TestLoadRGBRefusesBeforeDecoding(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := filepath.Join(dir, "fifo.png")
	if err := testlib.Mkfifo(fifo); err != nil {
		fifo = filepath.Join(dir, "d.png") // no FIFOs here: the directory row stands in
	}
	tests := []struct {
		name string
		path string
		want string
	}{
		{"30000x30000 declared in a few bytes", write("bomb.png", pngHeader(30000, 30000)), "declares 30000x30000 pixels, over the 48 M limit"},
		{"wide and short, still too many pixels", write("wide.png", pngHeader(1<<20, 64)), "declares 1048576x64 pixels"},
		{"a FIFO, whose read would block forever", fifo, "not a regular file"},
		{"a directory named like an image", func() string { p := filepath.Join(dir, "d.png"); os.Mkdir(p, 0o755); return p }(), "not a regular file"},
		{"not an image at all", write("text.png", []byte("hello")), "not a readable image"},
	}
	for _, tc := range tests {
		done := make(chan error, 1)
		go func() {
			_, err := capture.LoadRGB(tc.path, capture.Size{W: 4, H: 4}, capture.FitResize)
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, capture.ErrFrame) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), filepath.Base(tc.path)) {
				t.Errorf("%s: err %v, want ErrFrame naming the file with %q", tc.name, err, tc.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: LoadRGB still running after 5 s", tc.name)
		}
	}
	// Just under the limit in pixels is not refused for its size (it fails later, being empty).
	_, err := capture.LoadRGB(write("ok.png", pngHeader(8192, 5460)), capture.Size{W: 4, H: 4}, capture.FitResize)
	if err == nil || strings.Contains(err.Error(), "limit") {
		t.Fatalf("8192x5460 header: %v, want a decode error, not the size limit", err)
	}
}

// Issue 12, fault 7: NewReplay decodes nothing (start-up and memory do not grow with
// the folder); an image is decoded when it is first replayed, and kept for the next pass.
func TestReplayDecodesAsItGoes(t *testing.T) {
	dir := t.TempDir()
	red := func(x, y int) color.RGBA { return color.RGBA{200, 0, 0, 255} }
	blue := func(x, y int) color.RGBA { return color.RGBA{0, 0, 200, 255} }
	writePNG(t, filepath.Join(dir, "a.png"), 4, 4, red)
	for i := range 2000 { // not images at all: a decode at start would report them
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("z%04d.png", i)), []byte("x"), 0o644)
	}
	r, err := capture.NewReplay(capture.ReplayOptions{Path: dir, Size: capture.Size{W: 4, H: 4}, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Len() != 2001 {
		t.Fatalf("%d images", r.Len())
	}
	// Changed after NewReplay, before its first replay: the frame shows the new file.
	writePNG(t, filepath.Join(dir, "a.png"), 4, 4, blue)
	f, err := r.Next(context.Background())
	if err != nil || f.Err != nil || f.Pixels[2] != 200 || f.Pixels[0] != 0 {
		t.Fatalf("first frame: %v %v %v", err, f.Err, f.Pixels[:3])
	}
	f2, _ := r.Next(context.Background())
	if !errors.Is(f2.Err, capture.ErrFrame) {
		t.Fatalf("z0000.png: %v", f2.Err)
	}
	for range 1999 {
		r.Next(context.Background())
	}
	// Second pass: a.png comes from the cache, as decoded on the first.
	writePNG(t, filepath.Join(dir, "a.png"), 4, 4, red)
	f3, _ := r.Next(context.Background())
	if filepath.Base(f3.Name) != "a.png" || f3.Pixels[2] != 200 {
		t.Fatalf("second pass: %s %v", f3.Name, f3.Pixels[:3])
	}
}
