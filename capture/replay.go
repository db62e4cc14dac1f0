package capture

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// ReplayOptions configure a Replay source.
type ReplayOptions struct {
	Path string
	Loop bool
	FPS  float64 // 0: frames come as fast as they are taken
	Fit  Fit
	Size Size
}

// Replay plays a directory (or list) of images as if a camera produced them. Frames
// are decoded and fitted once at start, so the per-frame path copies nothing; an
// unreadable image becomes a frame with Err set, so it is counted and decided.
type Replay struct {
	opt    ReplayOptions
	names  []string
	pixels [][]byte
	errs   []error
	next   int
	seq    uint64
	start  time.Time
	timer  *time.Timer // reused for pacing: no allocation per frame
	closed atomic.Bool
}

// NewReplay lists and decodes the images.
func NewReplay(opt ReplayOptions) (*Replay, error) {
	if opt.Size.W <= 0 || opt.Size.H <= 0 {
		return nil, fmt.Errorf("%w: replay needs the model's input size", ErrSource)
	}
	if opt.FPS < 0 {
		return nil, fmt.Errorf("%w: fps %v is negative", ErrSource, opt.FPS)
	}
	paths, err := ListImages(opt.Path)
	if err != nil {
		return nil, err
	}
	r := &Replay{opt: opt, names: paths, pixels: make([][]byte, len(paths)), errs: make([]error, len(paths))}
	for i, p := range paths {
		r.pixels[i], r.errs[i] = LoadRGB(p, opt.Size, opt.Fit)
	}
	return r, nil
}

// Len is the number of images in one pass.
func (r *Replay) Len() int { return len(r.names) }

// Next blocks until the next frame is due (at the configured fps) and returns it;
// ErrEOF after the last frame unless looping.
func (r *Replay) Next(ctx context.Context) (Frame, error) {
	if r.closed.Load() {
		return Frame{}, ErrClosed
	}
	if r.next == len(r.names) {
		if !r.opt.Loop {
			return Frame{}, ErrEOF
		}
		r.next = 0
	}
	if r.seq == 0 {
		r.start = time.Now()
	}
	if r.opt.FPS > 0 {
		// Scheduled from the start, not from the last frame: no drift under load.
		due := r.start.Add(time.Duration(float64(r.seq) * float64(time.Second) / r.opt.FPS))
		if wait := time.Until(due); wait > 0 {
			if r.timer == nil {
				r.timer = time.NewTimer(wait)
			} else {
				r.timer.Reset(wait)
			}
			select {
			case <-ctx.Done():
				r.timer.Stop()
				return Frame{}, ctx.Err()
			case <-r.timer.C:
			}
		}
	} else if err := ctx.Err(); err != nil {
		return Frame{}, err
	}
	i := r.next
	r.next++
	r.seq++
	return Frame{Seq: r.seq, Time: time.Now(), Name: r.names[i], Pixels: r.pixels[i], Err: r.errs[i]}, nil
}

// Paced reports whether frames arrive on their own clock (a camera would): then a
// full queue drops frames instead of waiting.
func (r *Replay) Paced() bool { return r.opt.FPS > 0 }

// Close ends the replay: Next returns ErrClosed from then on, even if it races with
// Close. The decoded frames stay valid for whoever still holds one.
func (r *Replay) Close() error {
	r.closed.Store(true)
	return nil
}
