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

// Replay plays a directory (or list) of images as if a camera produced them. Images
// are decoded when they are first replayed, not at start, so start-up time does not
// grow with the folder; decoded frames are kept up to CacheBytes (a looped demo folder
// then costs no decoding, and no allocation, from its second pass on), and images past
// that budget are decoded again each time they come round, so memory stays bounded for
// any number of files. An unreadable image becomes a frame with Err set, so it is
// counted and decided.
type Replay struct {
	opt    ReplayOptions
	names  []string
	cache  [][]byte // decoded frames, nil until decoded (or beyond the budget)
	errs   []error  // per image, once read
	cached int      // bytes held in cache
	next   int
	seq    uint64
	start  time.Time
	timer  *time.Timer // reused for pacing: no allocation per frame
	closed atomic.Bool
}

// CacheBytes bounds the decoded frames a Replay keeps: about 1,300 frames of
// 224x224 RGB.
const CacheBytes = 192 << 20

// NewReplay lists the images; they are decoded as they are replayed.
func NewReplay(opt ReplayOptions) (*Replay, error) {
	if opt.Size.W <= 0 || opt.Size.H <= 0 {
		return nil, fmt.Errorf("%w: replay needs the model's input size", ErrSource)
	}
	if !(opt.FPS >= 0) {
		return nil, fmt.Errorf("%w: fps %v is not a non-negative number", ErrSource, opt.FPS)
	}
	paths, err := ListImages(opt.Path)
	if err != nil {
		return nil, err
	}
	return &Replay{opt: opt, names: paths, cache: make([][]byte, len(paths)), errs: make([]error, len(paths))}, nil
}

// frame is image i's pixels (decoded now, or from the cache) and its read error.
func (r *Replay) frame(i int) ([]byte, error) {
	if r.cache[i] != nil || r.errs[i] != nil {
		return r.cache[i], r.errs[i]
	}
	px, err := LoadRGB(r.names[i], r.opt.Size, r.opt.Fit)
	if err != nil {
		r.errs[i] = err // a bad file stays bad for this run: one read, one error
		return nil, err
	}
	if r.cached+len(px) <= CacheBytes {
		r.cache[i] = px
		r.cached += len(px)
	}
	return px, nil
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
	px, err := r.frame(i)
	return Frame{Seq: r.seq, Time: time.Now(), Name: r.names[i], Pixels: px, Err: err}, nil
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
