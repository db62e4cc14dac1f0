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
