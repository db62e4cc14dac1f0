package capture_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/adtrd/adtrd/capture"
)

// jpegBound is the largest per-channel difference allowed between Go's image/jpeg and
// Pillow's libjpeg-turbo on the corpus's JPEGs (IDCT and chroma upsampling differ;
// measured 66 on these 16-px, per-pixel-noise images, where 4:2:0 chroma is at its
// worst). README "One preprocessing" gives the numbers on photographs and how the
// toolkit scores through the daemon's decoding instead.
const jpegBound = 72

type corpusCase struct {
	File    string `json:"file"`
	Size    int    `json:"size"`
	Fit     string `json:"fit"`
	Lossy   bool   `json:"lossy"`
	Want    string `json:"want"`
	Error   string `json:"error"`
	Refused bool   `json:"refused"` // a malformed file both sides must refuse (messages differ)
}

// TestPreprocessCorpus holds the daemon to the toolkit's bytes on every case of the
// shared corpus (made by training/scripts/make_preprocess_corpus.py with the
// toolkit's own preprocessing): lossless files byte for byte, JPEGs within jpegBound.
func TestPreprocessCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "preprocess")
	raw, err := os.ReadFile(filepath.Join(dir, "corpus.json"))
	if err != nil {
		t.Fatal(err)
	}
	var corpus struct{ Cases []corpusCase }
	if err := json.Unmarshal(raw, &corpus); err != nil {
		t.Fatal(err)
	}
	if len(corpus.Cases) < 100 {
		t.Fatalf("corpus has %d cases; regenerate it", len(corpus.Cases))
	}
	worst := 0
	for _, c := range corpus.Cases {
		fit := capture.FitResize
		if c.Fit == "crop" {
			fit = capture.FitCrop
		}
		got, err := capture.LoadRGB(filepath.Join(dir, c.File), capture.Size{W: c.Size, H: c.Size}, fit)
		if c.Refused {
			if err == nil {
				t.Errorf("%s: decoded; the toolkit refuses it, and so must the daemon", c.File)
			}
			continue
		}
		if c.Error != "" {
			if err == nil || !strings.Contains(err.Error(), c.Error) {
				t.Errorf("%s %s: err %v, want the toolkit's %q", c.File, c.Fit, err, c.Error)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %s: %v", c.File, c.Fit, err)
			continue
		}
		want, err := os.ReadFile(filepath.Join(dir, c.Want))
		if err != nil {
			t.Fatal(err)
		}
		diff, at := 0, -1
		for i := range want {
			if d := absDiff(got[i], want[i]); d > diff {
				diff, at = d, i
			}
		}
		switch {
		case c.Lossy:
			worst = max(worst, diff)
			if diff > jpegBound {
				t.Errorf("%s %s: Go and Pillow JPEG decodes %d levels apart, over %d", c.File, c.Fit, diff, jpegBound)
			}
		case diff != 0:
			t.Errorf("%s %s: byte %d (pixel %d, channel %d) is %d, the toolkit's %d", c.File, c.Fit, at, at/3, at%3, got[at], want[at])
		}
	}
	t.Logf("JPEG: Go vs Pillow at most %d levels over the corpus", worst)
}

func absDiff(a, b byte) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}
