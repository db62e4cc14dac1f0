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

	"periph.io/x/conn/v3/gpio"
)

// Edge is one recorded level change of a simulated output.
type Edge struct {
	Pin   string
	Level gpio.Level
	At    time.Time
}

// Sim is the simulated backend: output pins that touch no hardware, log every edge at
// debug level, record it, and optionally append it to a CSV file (µs since start, pin,
// level). The demo and the benchmarks run on it; it has no inputs.
type Sim struct {
	log   *slog.Logger
	mu    sync.Mutex
	edges []Edge
	start time.Time
	file  *os.File
	csv   *csv.Writer
	buf   [3]string
}

// NewSim makes a simulated board; csvPath may be empty.
func NewSim(csvPath string, log *slog.Logger) (*Sim, error) {
	s := &Sim{log: log, start: time.Now(), edges: make([]Edge, 0, 1024)}
	if csvPath != "" {
		f, err := os.OpenFile(csvPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, fmt.Errorf("gpio: sim csv: %w", err)
		}
		s.file, s.csv = f, csv.NewWriter(f)
		if err := s.csv.Write([]string{"t_us", "pin", "level"}); err != nil {
			f.Close()
			return nil, fmt.Errorf("gpio: sim csv %s: %w", csvPath, err)
		}
	}
	return s, nil
}

// Pin returns a simulated output pin named name.
func (s *Sim) Pin(name string) *SimPin { return &SimPin{sim: s, name: name} }

// Edges returns a copy of every recorded edge.
func (s *Sim) Edges() []Edge {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Edge(nil), s.edges...)
}

// Close flushes the CSV; safe twice.
func (s *Sim) Close() error {
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

func (s *Sim) record(name string, l gpio.Level, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.edges = append(s.edges, Edge{name, l, at})
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("gpio edge", "pin", name, "level", l.String())
	}
	if s.csv != nil {
		s.buf = [3]string{strconv.FormatInt(at.Sub(s.start).Microseconds(), 10), name, l.String()}
		s.csv.Write(s.buf[:])
	}
}

// SimPin is one simulated output.
type SimPin struct {
	sim   *Sim
	name  string
	mu    sync.Mutex
	level gpio.Level
	set   bool
}

func (p *SimPin) Name() string { return p.name }

// Out records the edge; setting the level it already has is not an edge.
func (p *SimPin) Out(l gpio.Level) error {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.set && l == p.level {
		return nil
	}
	p.level, p.set = l, true
	p.sim.record(p.name, l, now)
	return nil
}
