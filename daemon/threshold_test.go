package daemon_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/adtrd/adtrd/app"
	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/internal/testlib"
	"github.com/adtrd/adtrd/model"
)

// A threshold no score can exceed passes every defect without a word: check, start
// and reload refuse it, naming the key and its line (or the metadata's file), and a
// reload keeps the running generation. One under the held-out good parts' scores is
// a warning in all three, and the generation runs.
func TestThresholdsTheModelCannotCross(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	metaJSON, err := os.ReadFile(testlib.Demo("adtr.tflite.json"))
	if err != nil {
		t.Fatal(err)
	}
	// write puts the demo graph beside metadata with threshold metaThr, and a config
	// whose threshold (line 5) is cfgThr as written.
	write := func(t *testing.T, dir, cfgThr string, metaThr float64) string {
		var m map[string]any
		json.Unmarshal(metaJSON, &m)
		m["threshold"] = metaThr
		// Start and reload run the fake engine, which the graph was not exported for:
		// that warning (engine.Load's reference check) is not this test's.
		delete(m, "engines")
		b, _ := json.Marshal(m)
		os.Remove(filepath.Join(dir, "m.tflite"))
		if err := os.Symlink(testlib.Demo("adtr.tflite"), filepath.Join(dir, "m.tflite")); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "m.tflite.json"), b, 0o644)
		p := filepath.Join(dir, "adtrd.yaml")
		body := fmt.Sprintf("model:\n  path: m.tflite\n  library: %s\n  threads: 1\nthreshold: %s\ncapture:\n  replay:\n    path: %s\n", lib, cfgThr, testlib.Demo("frames"))
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name    string
		cfgThr  string  // the config's threshold, as written
		metaThr float64 // the metadata's suggested threshold
		err     string  // in the error; "": none
		warn    string  // in the log at Warn; "": nothing logged
	}{
		// above the int8 map's top (31.875): a typo for 4.0
		{"config above the top", "40", 10.07, "line 5: threshold: 40: no score can exceed it: the model's scores reach 31.8750 at most", ""},
		// a pasted "never reject"
		{"config 1e308", "1e308", 10.07, "line 5: threshold: 1e+308: no score can exceed it", ""},
		// the config leaves it to the metadata, whose threshold is out of reach
		{"metadata above the top", "0", 1e308, "m.tflite.json: threshold: 1e+308: no score can exceed it", ""},
		// the config's own threshold is used: the metadata's does not matter
		{"config overrides a bad metadata", "12", 1e308, "", ""},
		// every good part would be rejected: loud on the line, so a warning
		{"config under every good score", "5", 10.07, "", "line 5: threshold: 5 is below every held-out good image's score"},
		// some good parts would be rejected
		{"metadata under the good max", "0", 9.5, "", "m.tflite.json: threshold: 9.5 is below the highest held-out good image's score 9.8535"},
		// the demo as exported
		{"suggested", "0", 10.07, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok := func(what string, err error, logs *logBuf) {
				t.Helper()
				if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) ||
					!errors.Is(err, daemon.ErrThreshold) || !errors.Is(err, model.ErrUnreachable)) {
					t.Fatalf("%s: err %v, want %q", what, err, tc.err)
				}
				if got := logs.String(); tc.warn == "" && strings.Contains(got, "level=WARN") || !strings.Contains(got, tc.warn) {
					t.Fatalf("%s: log %q, want a warning %q", what, got, tc.warn)
				}
			}
			dir := t.TempDir()
			p := write(t, dir, tc.cfgThr, tc.metaThr)
			cfg, err := config.Load(p)
			if err != nil {
				t.Fatal(err)
			}
			var checkLog logBuf
			ok("check", app.Check(cfg, tfliteBuild(), slog.New(slog.NewTextHandler(&checkLog, nil))), &checkLog)

			var startLog logBuf
			rl, _, err := daemon.NewReloader(p, fakeBuild, nil, nil, nil, slog.New(slog.NewTextHandler(&startLog, nil)))
			ok("start", err, &startLog)
			if rl != nil {
				rl.Close()
			}

			var reloadLog logBuf
			write(t, dir, "12", 10.07)
			rl, _, err = daemon.NewReloader(p, fakeBuild, nil, nil, nil, slog.New(slog.NewTextHandler(&reloadLog, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer rl.Close()
			write(t, dir, tc.cfgThr, tc.metaThr)
			ok("reload", rl.Reload("test"), &reloadLog)
			if st := rl.Status(); (tc.err != "") != (st.Generation == 1) {
				t.Fatalf("reload: generation %d after %v", st.Generation, tc.err)
			}
		})
	}
}
