package app_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	etflite "github.com/adtrd/adtrd/engine/tflite"

	"github.com/adtrd/adtrd/app"
	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/internal/testlib"
)

// `adtrd check` must refuse what `adtrd run` would refuse at start (field case 13):
// each row is a config that is valid YAML with existing paths but cannot start.
func TestCheckFindsWhatStartFinds(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	graph, err := os.ReadFile(testlib.Demo("adtr.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	metaJSON, err := os.ReadFile(testlib.Demo("adtr.tflite.json"))
	if err != nil {
		t.Fatal(err)
	}
	// withModel writes a graph and its metadata (sha256 set to the graph's when match).
	withModel := func(t *testing.T, data []byte, match bool) string {
		dir := t.TempDir()
		var meta map[string]any
		if err := json.Unmarshal(metaJSON, &meta); err != nil {
			t.Fatal(err)
		}
		if match {
			sum := sha256.Sum256(data)
			meta["sha256"] = hex.EncodeToString(sum[:])
		}
		m, _ := json.Marshal(meta)
		p := filepath.Join(dir, "adtr.tflite")
		os.WriteFile(p, data, 0o644)
		os.WriteFile(p+".json", m, 0o644)
		return p
	}
	random := make([]byte, len(graph))
	rand.Read(random)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, c *config.Config)
		want  string // in the error; "" = no error
	}{
		// the demo as shipped: nothing to find
		{"demo", func(t *testing.T, c *config.Config) {}, ""},
		// a graph cut short beside the full export's metadata: its hash is not the metadata's
		{"cut", func(t *testing.T, c *config.Config) {
			c.Model.Path = withModel(t, graph[:len(graph)/2], false)
		}, "sha256"},
		// random bytes whose metadata hash matches: TFLite cannot load them, and says why
		{"random", func(t *testing.T, c *config.Config) {
			c.Model.Path = withModel(t, random, true)
		}, "not a TFLite model"},
		// the demo pinned to another model
		{"pin", func(t *testing.T, c *config.Config) {
			c.Model.SHA256 = strings.Repeat("0", 64)
		}, "pinned model.sha256"},
		// the simulated outputs' CSV in a folder that does not exist
		{"csv", func(t *testing.T, c *config.Config) {
			c.Output.SimCSV = filepath.Join(t.TempDir(), "no", "such", "edges.csv")
		}, "output.sim_csv"},
		// a replay folder that is not there (any more)
		{"replay", func(t *testing.T, c *config.Config) {
			c.Capture.Replay.Path = filepath.Join(t.TempDir(), "gone")
		}, "gone"},
		// a model this user cannot read (skipped as root, who can)
		{"unreadable", func(t *testing.T, c *config.Config) {
			if os.Geteuid() == 0 {
				t.Skip("root reads a mode-000 file")
			}
			c.Model.Path = withModel(t, graph, true)
			os.Chmod(c.Model.Path, 0)
		}, "permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse("(test)", []byte("model:\n  path: "+testlib.Demo("adtr.tflite")+"\n  library: "+lib+
				"\ncapture:\n  replay:\n    path: "+testlib.Demo("frames")+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			tc.setup(t, &cfg)
			err = app.Check(cfg, app.Build(etflite.Factories()), slog.New(slog.NewTextHandler(io.Discard, nil)))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Check: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Check: %v, want an error holding %q", err, tc.want)
			}
		})
	}
}

// Check runs a camera's pipeline (capture.CheckCamera has the kinds): a camera that
// is not there now is its own kind of problem (OnlyUnreachable: `adtrd check` exits 1),
// unless a config error comes with it; with input.trigger wired, a camera that sends
// nothing in check's seconds passes, since it sends frames only for parts.
func TestCheckCamera(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	testlib.Tool(t, "gst-launch-1.0")
	const silent = "gst://videotestsrc is-live=true ! valve drop=true"
	for _, tc := range []struct {
		name, uri   string
		set         func(c *config.Config)
		want        string // in the error; "" = no error
		unreachable bool   // OnlyUnreachable
	}{
		// a head that cannot link: a config error
		{"unlinkable", "gst://videotestsrc ! jpegenc", nil, "could not link queue0 to videoconvert0", false},
		// an unplugged camera alone
		{"unplugged", "gst://filesrc location=/nonexistent/video0 ! decodebin", nil, "camera not reachable now", true},
		// unplugged, and an unwritable CSV: the config is wrong too
		{"unplugged and a bad path", "gst://filesrc location=/nonexistent/video0 ! decodebin", func(c *config.Config) {
			c.Output.SimCSV = filepath.Join(t.TempDir(), "no", "edges.csv")
		}, "output.sim_csv", false},
		// silent and untriggered: not reachable
		{"silent", silent, nil, "no frame within 1s", true},
		// silent and triggered by the line (set past config's own checks, which want a
		// gpiochip for inputs: this machine has none)
		{"triggered", silent, func(c *config.Config) { c.Input.Trigger.Line = "PQ.05" }, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse("(test)", []byte("model:\n  path: "+testlib.Demo("adtr.tflite")+"\n  library: "+lib+
				"\ncapture:\n  source: camera\n  camera:\n    uri: '"+tc.uri+"'\n    width: 64\n    height: 48\n    first_frame: 1s\n"))
			if err != nil {
				t.Fatal(err)
			}
			if tc.set != nil {
				tc.set(&cfg)
			}
			err = app.Check(cfg, app.Build(etflite.Factories()), slog.New(slog.NewTextHandler(io.Discard, nil)))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Check: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Check: %v, want an error holding %q", err, tc.want)
			case app.OnlyUnreachable(err) != tc.unreachable:
				t.Fatalf("Check: %v: OnlyUnreachable %v, want %v", err, !tc.unreachable, tc.unreachable)
			}
		})
	}
}
