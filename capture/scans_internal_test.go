package capture

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// jpegScans walks markers only; the corpus files give known counts.
func TestJPEGScans(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "preprocess", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	prog := read("jpeg-progressive-40x30.jpg")
	for _, tc := range []struct {
		name string
		b    []byte
		want int
	}{
		// baseline JPEG: one scan
		{"baseline", read("jpeg420-40x30.jpg"), 1},
		// Pillow's progressive: libjpeg's 10-scan colour script
		{"progressive", prog, 10},
		// its last scan repeated up to 40
		{"repeated scans", read("bad-jpeg-40-scans-40x30.jpg"), 40},
		// a PNG is not counted
		{"png", read("rgb8-16x16.png"), 0},
		// cut short: the scans begun before the cut (entropy-coded data never holds
		// 0xFF 0xDA, so counting that pair is an independent count)
		{"truncated", prog[:len(prog)/3], bytes.Count(prog[:len(prog)/3], []byte{0xFF, 0xDA})},
		// nothing but the start marker
		{"soi only", []byte{0xFF, 0xD8}, 0},
	} {
		if got := jpegScans(tc.b); got != tc.want {
			t.Errorf("%s: %d scans, want %d", tc.name, got, tc.want)
		}
	}
}
