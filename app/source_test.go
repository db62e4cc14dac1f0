package app_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/adtrd/adtrd/app"
	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/internal/testlib"
)

// Sources are chosen by the config's kind from a map the caller passes: the
// daemon's replay by default, and a kind with no factory is one clear error.
func TestOpenSource(t *testing.T) {
	c := config.Default().Capture
	c.Replay.Path = testlib.Demo("frames")
	src, err := app.OpenSource(app.Sources(), c, capture.Size{W: 224, H: 224}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.Len() != 16 || !src.Paced() {
		t.Fatalf("replay of the demo: %d frames, paced %v", src.Len(), src.Paced())
	}
	_, err = app.OpenSource(map[config.Source]app.SourceFactory{}, c, capture.Size{W: 224, H: 224}, quiet)
	if !errors.Is(err, capture.ErrSource) || !strings.Contains(err.Error(), "capture.source replay") {
		t.Fatalf("no factory: %v", err)
	}
}

// capture.source camera opens by URI: file:// plays the files (no GStreamer), a
// GStreamer URI starts a camera (a paced source with no end).
func TestOpenCameraSource(t *testing.T) {
	for _, tc := range []struct {
		name  string
		uri   string
		len   int
		paced bool
	}{
		// jetson-inference's file://, unpaced at fps 0
		{"file", "file://" + testlib.Demo("frames"), 16, false},
		// a GStreamer camera (videotestsrc)
		{"gst", "gst://videotestsrc is-live=true", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.paced {
				testlib.Tool(t, "gst-launch-1.0")
			}
			c := config.Default().Capture
			c.Source, c.Camera.URI = config.SourceCamera, tc.uri
			src, err := app.OpenSource(app.Sources(), c, capture.Size{W: 224, H: 224}, quiet)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			if src.Len() != tc.len || src.Paced() != tc.paced {
				t.Fatalf("%s: %d frames, paced %v", tc.uri, src.Len(), src.Paced())
			}
		})
	}
}

var quiet = slog.New(slog.DiscardHandler)
