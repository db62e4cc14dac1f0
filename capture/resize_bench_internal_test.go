package capture

import (
	"fmt"
	"testing"
)

// BenchmarkResize: the toolkit's resize (resizePillow, precomputed) from a camera's
// size to 224x224, the Go side's main cost per camera frame.
func BenchmarkResize(b *testing.B) {
	for _, sz := range [][2]int{{640, 480}, {1280, 720}, {1920, 1080}} {
		b.Run(fmt.Sprintf("%dx%d", sz[0], sz[1]), func(b *testing.B) {
			src, dst := make([]byte, sz[0]*sz[1]*3), make([]byte, 224*224*3)
			for i := range src {
				src[i] = byte(i * 7)
			}
			r := newResizer(sz[0], sz[1], 224, 224)
			b.ReportAllocs()
			for b.Loop() {
				r.resize(src, dst)
			}
		})
	}
}
