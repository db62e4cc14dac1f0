package model_test

import (
	"math"
	"os"
	"strings"
	"testing"

	"github.com/adtrd/adtrd/internal/testlib"
	"github.com/adtrd/adtrd/model"
)

// Whatever bytes a metadata file holds: no panic, a one-line ErrMetadata, or metadata
// the scorer can use (finite positive threshold, a square grid, a kernel that fits).
// Seeds: testdata/fuzz/FuzzParse and the demo's metadata.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile(testlib.Demo("adtr.tflite.json")); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"format":"adtr-model/1","threshold":1e999}`))
	f.Add([]byte(`{"format":"adtr-model/1","input":{"width":224,"height":224,"channels":3},"grid":[14,14],"upsample":"bilinear-align-corners","pool_kernel":16,"threshold":-0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := model.Parse("m.json", b)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("not one line: %q", err)
			}
			return
		}
		if !(m.Threshold > 0) || math.IsInf(m.Threshold, 0) || len(m.Grid) != 2 || m.Grid[0] <= 0 || m.PoolKernel <= 0 || m.PoolKernel > m.Input.Width {
			t.Fatalf("accepted unusable metadata: %+v", m)
		}
	})
}
