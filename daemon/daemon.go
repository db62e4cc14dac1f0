// Package daemon is adtrd's pipeline: capture -> infer -> score -> decide -> reject,
// with a bounded queue that drops at the capture end, and one decision record per frame.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/score"
)

// Engine runs the model: frames are written into Input, Invoke runs, Output holds
// the raw int8 anomaly map. Implemented over tflite; tests may use others.
type Engine interface {
	Input() []byte
	Invoke() error
	Output() []int8
	Close() error
}

// Source produces frames; Paced sources (cameras) drop when the queue is full,
// unpaced ones (replay as fast as possible) wait for the pipeline.
type Source interface {
	Next(ctx context.Context) (capture.Frame, error)
	Paced() bool
	Close() error
}

// Rejecter fires the reject output; it must not block.
type Rejecter interface {
	Pulse(at time.Time, width time.Duration) error
}

// Decision is what happens to a part.
type Decision int

const (
	Pass Decision = iota
	Reject
)

func (d Decision) String() string {
	switch d {
	case Pass:
		return "pass"
	case Reject:
		return "reject"
	}
	return fmt.Sprintf("decision(%d)", int(d))
}

// Reason says why a decision was taken.
type Reason int

const (
	ByScore      Reason = iota // the score against the threshold
	BadFrame                   // the frame could not be read: fail-safe rule
	InferFailure               // inference failed: fail-safe rule
)

func (r Reason) String() string {
	switch r {
	case ByScore:
		return "score"
	case BadFrame:
		return "fail-safe: bad frame"
	case InferFailure:
		return "fail-safe: inference error"
	}
	return fmt.Sprintf("reason(%d)", int(r))
}

// Settings are the pipeline's knobs, taken from the config by the caller.
type Settings struct {
	Threshold   float64
	FailSafe    Decision // for frames that cannot be scored
	Queue       int
	PulseWidth  time.Duration
	RejectDelay time.Duration
}

// Record is one frame's decision.
type Record struct {
	Seq      uint64
	Name     string
	Score    float64
	Decision Decision
	Reason   Reason
	Err      error
	Wait     time.Duration // capture to start of inference (time in the queue)
	Infer    time.Duration
	Scoring  time.Duration
}

// Stats are counters, safe to read while running.
type Stats struct {
	Frames, Rejects, Dropped, BadFrames, InferErrors, RejectErrors atomic.Uint64
}

// Summary is the end-of-run account; Missed and FalseRejects count only frames
// named by the demo convention (see label).
type Summary struct {
	Frames, Rejects, Dropped, BadFrames, InferErrors uint64
	Missed, FalseRejects                             []string
}

func (s Summary) String() string {
	return fmt.Sprintf("frames %d, rejects %d, defects missed %d, false rejects %d, dropped %d, bad frames %d, inference errors %d",
		s.Frames, s.Rejects, len(s.Missed), len(s.FalseRejects), s.Dropped, s.BadFrames, s.InferErrors)
}

// Pipeline wires a source, an engine, a scorer and a rejecter.
type Pipeline struct {
	set    Settings
	eng    Engine
	sc     *score.Scorer
	src    Source
	rej    Rejecter
	log    *slog.Logger
	Stats  Stats
	OnDone func(Record) // called for every decided frame (tests, metrics); may be nil

	mu      sync.Mutex
	missed  []string
	falseRj []string
}

// New makes a pipeline; it does not take ownership of its parts.
func New(set Settings, eng Engine, sc *score.Scorer, src Source, rej Rejecter, log *slog.Logger) (*Pipeline, error) {
	if set.Queue < 1 {
		return nil, fmt.Errorf("daemon: queue %d must be at least 1", set.Queue)
	}
	if want := sc.Params().Size * sc.Params().Size * 3; len(eng.Input()) != want {
		return nil, fmt.Errorf("daemon: engine input is %d bytes, the scorer expects %dx%d RGB", len(eng.Input()), sc.Params().Size, sc.Params().Size)
	}
	return &Pipeline{set: set, eng: eng, sc: sc, src: src, rej: rej, log: log}, nil
}

// Run processes frames until the source ends or ctx is cancelled.
func (p *Pipeline) Run(ctx context.Context) (Summary, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	frames := make(chan capture.Frame, p.set.Queue)
	capErr := make(chan error, 1)
	go func() { capErr <- p.capture(ctx, frames) }()
	for f := range frames {
		p.handle(f)
	}
	err := <-capErr
	if errors.Is(err, capture.ErrEOF) || errors.Is(err, context.Canceled) {
		err = nil
	}
	return p.summary(), err
}

func (p *Pipeline) capture(ctx context.Context, out chan<- capture.Frame) error {
	defer close(out)
	paced := p.src.Paced()
	for {
		f, err := p.src.Next(ctx)
		if err != nil {
			return err
		}
		if !paced {
			select {
			case out <- f:
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		select {
		case out <- f:
		default:
			// The pipeline is behind: drop the newest frame here rather than queue it.
			p.Stats.Dropped.Add(1)
			p.log.Warn("frame dropped: pipeline behind", "seq", f.Seq, "queue", cap(out))
		}
	}
}

func (p *Pipeline) handle(f capture.Frame) {
	start := time.Now()
	rec := Record{Seq: f.Seq, Name: f.Name, Wait: start.Sub(f.Time)}
	p.Stats.Frames.Add(1)
	switch {
	case f.Err != nil:
		p.Stats.BadFrames.Add(1)
		rec.Decision, rec.Reason, rec.Err = p.set.FailSafe, BadFrame, f.Err
	default:
		copy(p.eng.Input(), f.Pixels)
		if err := p.eng.Invoke(); err != nil {
			p.Stats.InferErrors.Add(1)
			rec.Decision, rec.Reason, rec.Err = p.set.FailSafe, InferFailure, err
			break
		}
		t1 := time.Now()
		rec.Infer = t1.Sub(start)
		s, err := p.sc.ScoreInt8(p.eng.Output())
		rec.Scoring = time.Since(t1)
		if err != nil {
			p.Stats.InferErrors.Add(1)
			rec.Decision, rec.Reason, rec.Err = p.set.FailSafe, InferFailure, err
			break
		}
		rec.Score = s
		if s > p.set.Threshold {
			rec.Decision = Reject
		}
	}
	if rec.Decision == Reject {
		p.Stats.Rejects.Add(1)
		if err := p.rej.Pulse(f.Time.Add(p.set.RejectDelay), p.set.PulseWidth); err != nil {
			p.Stats.RejectErrors.Add(1)
			p.log.Error("reject output", "seq", f.Seq, "err", err)
		}
	}
	p.record(rec)
}

func (p *Pipeline) record(r Record) {
	lvl := slog.LevelInfo
	if r.Err != nil {
		lvl = slog.LevelWarn
	}
	if p.log.Enabled(context.Background(), lvl) {
		attrs := [...]slog.Attr{
			slog.Uint64("seq", r.Seq),
			slog.String("frame", filepath.Base(r.Name)),
			slog.Float64("score", r.Score),
			slog.Float64("threshold", p.set.Threshold),
			slog.String("decision", r.Decision.String()),
			slog.String("reason", r.Reason.String()),
			slog.Duration("queue_wait", r.Wait),
			slog.Duration("infer", r.Infer),
			slog.Duration("score_time", r.Scoring),
		}
		if r.Err != nil {
			p.log.LogAttrs(context.Background(), lvl, "frame", append(attrs[:], slog.String("err", r.Err.Error()))...)
		} else {
			p.log.LogAttrs(context.Background(), lvl, "frame", attrs[:]...)
		}
	}
	switch label(r.Name) {
	case "":
	case "good":
		if r.Decision == Reject {
			p.mu.Lock()
			p.falseRj = append(p.falseRj, filepath.Base(r.Name))
			p.mu.Unlock()
		}
	default:
		if r.Decision == Pass {
			p.mu.Lock()
			p.missed = append(p.missed, filepath.Base(r.Name))
			p.mu.Unlock()
		}
	}
	if p.OnDone != nil {
		p.OnDone(r)
	}
}

// label reads the demo frames' naming convention, NNN_<label>.png: "good" or a
// defect kind. Other names are unlabelled ("") and count as neither.
func label(name string) string {
	base := strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))
	_, l, ok := strings.Cut(base, "_")
	if !ok || l == "" {
		return ""
	}
	for _, c := range l {
		if (c < 'a' || c > 'z') && c != '_' {
			return ""
		}
	}
	return l
}

func (p *Pipeline) summary() Summary {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Summary{
		Frames: p.Stats.Frames.Load(), Rejects: p.Stats.Rejects.Load(), Dropped: p.Stats.Dropped.Load(),
		BadFrames: p.Stats.BadFrames.Load(), InferErrors: p.Stats.InferErrors.Load(),
		Missed: append([]string(nil), p.missed...), FalseRejects: append([]string(nil), p.falseRj...),
	}
}
