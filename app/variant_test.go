package app_test

import (
	"errors"
	"testing"

	"github.com/adtrd/adtrd/app"
	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/internal/testlib"
)

func TestEngineVariant(t *testing.T) {
	cfg := config.Default()
	cfg.Model.Path = testlib.Demo("adtr.tflite")
	cfg.Model.SHA256 = "pin of the .tflite"
	for _, tc := range []struct {
		spec   string
		engine string
		path   string
		acc    config.Accelerator
		err    bool
	}{
		// the configured graph on another runtime
		{"litert", "litert", "adtr.tflite", config.AcceleratorCPU, false},
		// LiteRT's GPU accelerator
		{"litert:gpu", "litert", "adtr.tflite", config.AcceleratorGPU, false},
		// ONNX Runtime takes the .onnx exported beside it
		{"onnxruntime", "onnxruntime", "adtr.onnx", config.AcceleratorCPU, false},
		// no such engine
		{"tensorflow", "", "", 0, true},
		// only litert has accelerators
		{"tflite:gpu", "", "", 0, true},
		// litert's CPU said explicitly
		{"litert:cpu", "litert", "adtr.tflite", config.AcceleratorCPU, false},
		// an accelerator litert has not, in any case, or none after the colon
		{"litert:npu", "", "", 0, true},
		{"litert:GPU", "", "", 0, true},
		{"litert:", "", "", 0, true},
		// an empty item
		{"", "", "", 0, true},
	} {
		got, err := app.EngineVariant(cfg, tc.spec)
		if tc.err {
			if !errors.Is(err, app.ErrVariant) {
				t.Errorf("%s: %v, want ErrVariant", tc.spec, err)
			}
			continue
		}
		if err != nil || got.Model.Engine != tc.engine || got.Model.Path != testlib.Demo(tc.path) || got.Model.LiteRT.Accelerator != tc.acc {
			t.Errorf("%s: %v engine %s path %s acc %v", tc.spec, err, got.Model.Engine, got.Model.Path, got.Model.LiteRT.Accelerator)
		}
		if (got.Model.SHA256 != "") != (tc.path == "adtr.tflite") {
			t.Errorf("%s: pin %q kept for another graph, or dropped for the same", tc.spec, got.Model.SHA256)
		}
	}
	// a graph not exported beside it
	cfg.Model.Path = t.TempDir() + "/m.tflite"
	if _, err := app.EngineVariant(cfg, "onnxruntime"); !errors.Is(err, app.ErrVariant) {
		t.Errorf("missing .onnx: %v", err)
	}
}
