package capture

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// ErrLost reports a source that has lost its camera and is reconnecting: the
// pipeline keeps running, parts without frames take the fail-safe, and Next delivers
// frames again once the source has recovered. It is not the end of the stream
// (ErrEOF, ErrClosed, or any other error from Next), nor a bad single frame
// (Frame.Err).
var ErrLost = errors.New("capture: source lost")

// Pool is a fixed set of frame buffers a source fills and the pipeline hands back
// with Frame.Release, so a camera's frames cost no allocation after start. Get never
// blocks: with every buffer in use the source drops the frame it is reading, which is
// what a camera has to do anyway when the consumer is behind.
type Pool struct {
	bufs [][]byte
	held []atomic.Bool // by a frame; a release of a buffer not held is ignored
	free chan int
}

// NewPool makes n buffers of size bytes each.
func NewPool(n, size int) (*Pool, error) {
	if n < 1 || size < 1 {
		return nil, fmt.Errorf("%w: pool of %d buffers of %d bytes", ErrSource, n, size)
	}
	p := &Pool{bufs: make([][]byte, n), held: make([]atomic.Bool, n), free: make(chan int, n)}
	for i := range p.bufs {
		p.bufs[i] = make([]byte, size)
		p.free <- i
	}
	return p, nil
}

// Get returns a free buffer and its index, or ok false when all are in use.
func (p *Pool) Get() (buf []byte, idx int, ok bool) {
	select {
	case i := <-p.free:
		p.held[i].Store(true)
		return p.bufs[i], i, true
	default:
		return nil, 0, false
	}
}

// Frame wraps buffer idx (from Get) as a frame whose Release returns it.
func (p *Pool) Frame(idx int, f Frame) Frame {
	f.Pixels, f.pool, f.idx = p.bufs[idx], p, idx+1
	return f
}

// Free is the number of buffers not held by a frame.
func (p *Pool) Free() int { return len(p.free) }

// Put returns buffer idx (from Get) that the source did not turn into a frame.
func (p *Pool) Put(idx int) { p.put(idx) }

// put frees buffer idx. Frames are values, so two copies of one frame could both be
// released: only the first release of a held buffer frees it.
func (p *Pool) put(idx int) {
	if p.held[idx].CompareAndSwap(true, false) {
		p.free <- idx // never blocks: the channel holds every buffer
	}
}
