// Package gpio drives the line's outputs: the reject pulse (and, later, alarm and
// ready lines) on a backend; the simulated backend records every edge with its time.
package gpio

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"
)

// ErrQueueFull is returned when pulses are requested faster than they can be given.
var ErrQueueFull = errors.New("gpio: pulse queue full")

// Pin is an output line. Drivers (simulated, periph.io) implement it.
type Pin interface {
	Name() string
	Set(active bool) error
}

// Edge is one recorded level change.
type Edge struct {
	Pin    string
	Active bool
	At     time.Time
}

// Sim is a simulated pin: it logs and records every edge, and optionally appends
// it to a CSV file (time since start in µs, pin, level). No hardware is touched.
type Sim struct {
	name   string
	log    *slog.Logger
	mu     sync.Mutex
	active bool
	edges  []Edge
	start  time.Time
	file   *os.File
	csv    *csv.Writer
}

// NewSim makes a simulated pin; csvPath may be empty.
func NewSim(name, csvPath string, log *slog.Logger) (*Sim, error) {
	s := &Sim{name: name, log: log, start: time.Now(), edges: make([]Edge, 0, 1024)}
	if csvPath != "" {
		f, err := os.OpenFile(csvPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, fmt.Errorf("gpio: sim csv: %w", err)
		}
		s.file, s.csv = f, csv.NewWriter(f)
		s.csv.Write([]string{"t_us", "pin", "active"})
	}
	return s, nil
}

func (s *Sim) Name() string { return s.name }

// Set records the edge (a no-op when the level does not change).
func (s *Sim) Set(active bool) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if active == s.active {
		return nil
	}
	s.active = active
	s.edges = append(s.edges, Edge{s.name, active, now})
	s.log.Debug("gpio edge", "pin", s.name, "active", active)
	if s.csv != nil {
		s.csv.Write([]string{strconv.FormatInt(now.Sub(s.start).Microseconds(), 10), s.name, strconv.FormatBool(active)})
	}
	return nil
}

// Edges returns a copy of every recorded edge.
func (s *Sim) Edges() []Edge {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Edge(nil), s.edges...)
}

// Close leaves the pin inactive and flushes the CSV; safe twice.
func (s *Sim) Close() error {
	s.Set(false)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file == nil {
		return nil
	}
	s.csv.Flush()
	err := errors.Join(s.csv.Error(), s.file.Close())
	s.file, s.csv = nil, nil
	return err
}

type pulse struct {
	at    time.Time
	width time.Duration
}

// Pulser gives timed pulses on one pin from a bounded FIFO: requests arrive in
// frame order with a fixed delay, so their start times never go backwards.
type Pulser struct {
	pin   Pin
	queue chan pulse
	done  chan struct{}
	log   *slog.Logger
	once  sync.Once
}

// NewPulser starts the pulse goroutine; depth bounds pulses waiting to be given.
func NewPulser(pin Pin, depth int, log *slog.Logger) *Pulser {
	p := &Pulser{pin: pin, queue: make(chan pulse, depth), done: make(chan struct{}), log: log}
	go p.run()
	return p
}

// Pulse asks for an active pulse of width starting at at; it never blocks.
func (p *Pulser) Pulse(at time.Time, width time.Duration) error {
	select {
	case p.queue <- pulse{at, width}:
		return nil
	default:
		return ErrQueueFull
	}
}

func (p *Pulser) run() {
	defer close(p.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	wait := func(until time.Time) {
		if d := time.Until(until); d > 0 {
			timer.Reset(d)
			<-timer.C
		}
	}
	for q := range p.queue {
		wait(q.at)
		if err := p.pin.Set(true); err != nil {
			p.log.Error("reject output", "pin", p.pin.Name(), "err", err)
		}
		wait(q.at.Add(q.width))
		if err := p.pin.Set(false); err != nil {
			p.log.Error("reject output", "pin", p.pin.Name(), "err", err)
		}
	}
}

// Close gives the pulses already queued, then returns with the pin inactive.
func (p *Pulser) Close(ctx context.Context) error {
	p.once.Do(func() { close(p.queue) })
	select {
	case <-p.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return p.pin.Set(false)
}
