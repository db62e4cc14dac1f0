package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/adtrd/adtrd/internal/testlib"
)

// `adtrd check` runs a camera's pipeline to its first frame (field case 20): a head
// GStreamer cannot link is a config error (exit 2, GStreamer's line); a camera that
// is not there now is exit 1, saying so, when the rest of the config is right.
func TestCheckRunsTheCameraPipeline(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	testlib.Tool(t, "gst-launch-1.0")
	for _, tc := range []struct {
		name, camera, extra string
		code                int
		want                string // on stdout (exit 0) or stderr
	}{
		// a live pattern at a width GStreamer pads (field case 16's 250)
		{"ok", "uri: 'gst://videotestsrc is-live=true ! video/x-raw,width=320,height=240'\n    width: 250\n    height: 200", "", 0, ": ok"},
		// JPEG into adtrd's videoconvert (field case 20)
		{"unlinkable", "uri: 'gst://videotestsrc ! jpegenc'\n    width: 64\n    height: 64", "", 2, "GStreamer cannot run this pipeline: erroneous pipeline: could not link queue0 to videoconvert0"},
		// an unplugged camera: its device node is gone
		{"unplugged", "uri: 'gst://filesrc location=/nonexistent/video0 ! decodebin'\n    width: 64\n    height: 64", "", 1, "camera not reachable now"},
		// unplugged, and a config error besides: the config error decides
		{"unplugged and a bad path", "uri: 'gst://filesrc location=/nonexistent/video0 ! decodebin'\n    width: 64\n    height: 64",
			"output:\n  sim_csv: /nonexistent/dir/edges.csv\n", 2, "camera not reachable now"},
		// a live camera that sends nothing in its time is not reachable (triggered: daemon TestCheckCamera)
		{"silent", "uri: 'gst://videotestsrc is-live=true ! valve drop=true'\n    width: 64\n    height: 64\n    first_frame: 1s", "", 1, "no frame within 1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "c.yaml")
			os.WriteFile(cfg, []byte("model:\n  path: "+testlib.Demo("adtr.tflite")+"\n  library: "+lib+
				"\nhttp:\n  address: ''\ncapture:\n  source: camera\n  camera:\n    "+tc.camera+"\n"+tc.extra), 0o644)
			var out, errb bytes.Buffer
			code := realMain(context.Background(), []string{"check", "-c", cfg}, &out, &errb)
			got := out.String() + errb.String()
			if code != tc.code || !strings.Contains(got, tc.want) || strings.Count(strings.TrimSpace(got), "\n") != 0 {
				t.Fatalf("exit %d, %q: want exit %d and one line saying %q", code, got, tc.code, tc.want)
			}
		})
	}
}
