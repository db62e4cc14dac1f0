package litert

import (
	"reflect"
	"testing"
)

func TestParsePlacement(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		want  Placement
		ok    bool
	}{
		// The demo graph on LiteRT 2.3.0's WebGPU accelerator (lavapipe), as printed.
		{"split", []string{
			"INFO: [delegate_webgpu.cc:363] Created a WebGPU environment.",
			"ERROR: Following operations are not supported by GPU delegate:",
			"BATCH_MATMUL: Not supported batched mat mul case: non-constant tensor",
			"L2_NORMALIZATION: Operation is not supported.",
			"96 operations will run on the GPU, and the remaining 195 operations will run on the CPU.",
		}, Placement{GPU: 96, CPU: 195, Unsupported: []string{
			"BATCH_MATMUL: Not supported batched mat mul case: non-constant tensor",
			"L2_NORMALIZATION: Operation is not supported.",
		}}, true},
		// A graph the accelerator takes whole.
		{"all", []string{"All 12 operations will run on the GPU"}, Placement{GPU: 12}, true},
		// No accelerator output (it did not run): op-like lines are not taken for placement.
		{"none", []string{"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", "ERROR: oops"}, Placement{}, false},
	} {
		got, ok := parsePlacement(tc.lines)
		if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v %v, want %+v %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
	if s := (Placement{GPU: 96, CPU: 195}).String(); s != "96 of 291 ops on the GPU, 195 on the CPU" {
		t.Errorf("String: %q", s)
	}
}
