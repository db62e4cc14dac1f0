package web

import (
	"bytes"
	"image"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/heatmap"
)

// liveView renders the latest decision's frame with its heatmap, at most rate times a
// second, on its own goroutine: the frame path only hands over an Event (a value).
type liveView struct {
	bus  *events.Bus
	rate float64

	mu       sync.Mutex
	pending  events.Event // the latest decision offered, not yet rendered
	has      bool
	png      []byte // the latest render
	seq      uint64 // its frame's seq
	rendered uint64

	// the renderer's reused buffers
	frame []byte
	grid  []float32
	img   *image.RGBA
	buf   bytes.Buffer
}

func newLiveView(bus *events.Bus, rate float64) *liveView {
	if rate <= 0 {
		rate = 2
	}
	return &liveView{bus: bus, rate: rate}
}

func (l *liveView) offer(e events.Event) {
	l.mu.Lock()
	l.pending, l.has = e, true
	l.mu.Unlock()
}

// run renders until stop, calling done after each new image.
func (l *liveView) run(stop <-chan struct{}, done func(seq uint64, score float64)) {
	t := time.NewTicker(time.Duration(float64(time.Second) / l.rate))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		l.mu.Lock()
		e, ok := l.pending, l.has
		l.has = false
		l.mu.Unlock()
		if ok && l.render(e) {
			done(e.Record.Seq, e.Record.Score)
		}
	}
}

// render draws e's frame and map; false when the bus's ring has moved past it.
func (l *liveView) render(e events.Event) bool {
	m := e.Map
	if m.Size == 0 || m.Grid == 0 {
		return false
	}
	if len(l.frame) != m.Size*m.Size*3 {
		l.frame = make([]byte, m.Size*m.Size*3)
		l.img = image.NewRGBA(image.Rect(0, 0, m.Size, m.Size))
	}
	if len(l.grid) != m.Grid*m.Grid {
		l.grid = make([]float32, m.Grid*m.Grid)
	}
	if !l.bus.Frame(m, l.frame) || !l.bus.Map(m, l.grid) {
		return false
	}
	if err := heatmap.Overlay(l.img, l.frame, m.Size, l.grid, m.Grid, e.Record.Threshold); err != nil {
		return false
	}
	l.buf.Reset()
	if err := heatmap.EncodePNG(&l.buf, l.img); err != nil {
		return false
	}
	out := bytes.Clone(l.buf.Bytes()) // handed to requests: never reused
	l.mu.Lock()
	l.png, l.seq = out, e.Record.Seq
	l.rendered++
	l.mu.Unlock()
	return true
}

func (l *liveView) latest() ([]byte, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.png, l.seq
}

func (s *Server) live(w http.ResponseWriter, r *http.Request) {
	b, seq := s.hub.live.latest()
	if b == nil {
		problem(w, http.StatusNotFound, "no frame rendered yet")
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Seq", strconv.FormatUint(seq, 10))
	w.Write(b)
}
