package config_test

import (
	"slices"
	"testing"
	"time"

	"github.com/adtrd/adtrd/config"
)

func TestDiffAndRestartKeys(t *testing.T) {
	a := config.Default()
	b := config.Default()
	b.Threshold = 9.5
	b.Model.Threads = 1
	b.Output.Reject.Delay = config.Duration(300 * time.Millisecond)
	b.Capture.Replay.FPS = 30
	off := 3
	b.Output.Alarm.Offset = &off
	if got, want := config.Diff(a, b), []string{"model.threads", "threshold", "capture.replay.fps", "output.reject.delay", "output.alarm.offset"}; !slices.Equal(got, want) {
		t.Fatalf("diff %v, want %v", got, want)
	}
	if got, want := config.RestartKeys(a, b), []string{"capture.replay.fps", "output.alarm.offset"}; !slices.Equal(got, want) {
		t.Fatalf("restart keys %v, want %v", got, want)
	}
	if len(config.Diff(a, config.Default())) != 0 {
		t.Fatal("a config differs from itself")
	}
}

// A key's line is kept for messages found after reading (a threshold the model cannot
// reach), and is not a change: a comment added above every key moves each line, and a
// reload must still see nothing that needs a restart.
func TestLinesAreNotChanges(t *testing.T) {
	a, err := config.Decode("a.yaml", []byte("log:\n  level: info\nthreshold: 12\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := config.Decode("a.yaml", []byte("# the line's config\n\nlog:\n  level: info\nthreshold: 12\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Line("threshold") != 3 || b.Line("threshold") != 5 || b.Where("threshold") != "line 5: threshold" {
		t.Fatalf("lines %d and %d (%q), want 3 and 5", a.Line("threshold"), b.Line("threshold"), b.Where("threshold"))
	}
	if d := config.Diff(a, b); len(d) != 0 {
		t.Fatalf("moved lines read as changed keys: %v", d)
	}
	if d := config.Default(); d.Line("threshold") != 0 || d.Where("threshold") != "threshold" {
		t.Fatalf("the defaults have lines: %d %q", d.Line("threshold"), d.Where("threshold"))
	}
}
