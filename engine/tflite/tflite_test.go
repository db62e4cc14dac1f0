package tflite_test

import (
	"log/slog"
	"runtime"
	"strings"
	"testing"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/engine/tflite"
	"github.com/adtrd/adtrd/internal/testlib"
)

// The demo graph's export recorded its reference-frame score on TFLite with XNNPACK
// (models/demo/adtr.tflite.json): the daemon's XNNPACK path gives it exactly, and
// TFLite's own int8 kernels (delegate cpu, which round twice on amd64) give another,
// which is said at load. Measured: 22.5382 both ways with XNNPACK; 22.4102 with the
// builtin kernels on amd64 (two map steps).
func TestReferenceScoreOnTheRealEngine(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	for _, tc := range []struct {
		delegate config.Delegate
		warns    bool
	}{
		// the exact int8 path: the export's score
		{config.DelegateXNNPACK, false},
		// TFLite's builtin kernels on amd64: another score (arm64's builtin kernels
		// round as XNNPACK does)
		{config.DelegateCPU, runtime.GOARCH == "amd64"},
	} {
		t.Run(tc.delegate.String(), func(t *testing.T) {
			var logs strings.Builder
			e, err := tflite.Open(config.Model{Engine: tflite.Name, Path: testlib.Demo("adtr.tflite"), Library: lib, Threads: 1, Delegate: tc.delegate},
				slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			if warned := strings.Contains(logs.String(), "scores the reference frame"); warned != tc.warns {
				t.Fatalf("warned about the reference score: %v, want %v\n%s", warned, tc.warns, logs.String())
			}
		})
	}
}
