package gpio_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adtrd/adtrd/gpio"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// The simulated pin is this machine's stand-in for a GPIO line (there is no GPIO chip here).
func TestSimRecordsEdgesAndCSV(t *testing.T) {
	csvPath := filepath.Join(t.TempDir(), "edges.csv")
	pin, err := gpio.NewSim("reject", csvPath, quiet)
	if err != nil {
		t.Fatal(err)
	}
	pin.Set(true)
	pin.Set(true) // no change, no edge
	pin.Set(false)
	pin.Set(true)
	if err := pin.Close(); err != nil { // leaves the pin inactive: a fourth edge
		t.Fatal(err)
	}
	if err := pin.Close(); err != nil {
		t.Fatal(err)
	}
	edges := pin.Edges()
	if len(edges) != 4 || !edges[0].Active || edges[1].Active || !edges[2].Active || edges[3].Active {
		t.Fatalf("edges %+v", edges)
	}
	b, _ := os.ReadFile(csvPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 5 || lines[0] != "t_us,pin,active" || !strings.HasSuffix(lines[1], ",reject,true") {
		t.Fatalf("csv:\n%s", b)
	}
}

func TestPulserGivesPulsesAtTheirTimes(t *testing.T) {
	pin, _ := gpio.NewSim("reject", "", quiet)
	p := gpio.NewPulser(pin, 8, quiet)
	start := time.Now().Add(20 * time.Millisecond)
	for i := 0; i < 3; i++ {
		if err := p.Pulse(start.Add(time.Duration(i)*15*time.Millisecond), 5*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e := pin.Edges()
	if len(e) != 6 {
		t.Fatalf("%d edges", len(e))
	}
	for i := 0; i < 3; i++ {
		on, off := e[2*i], e[2*i+1]
		due := start.Add(time.Duration(i) * 15 * time.Millisecond)
		// edges are scheduled on absolute times and never come early
		if !on.Active || off.Active || on.At.Before(due) || off.At.Before(due.Add(5*time.Millisecond)) {
			t.Fatalf("pulse %d: %+v %+v (due %v)", i, on, off, due)
		}
	}
}

func TestPulserQueueIsBounded(t *testing.T) {
	pin, _ := gpio.NewSim("reject", "", quiet)
	p := gpio.NewPulser(pin, 1, quiet)
	far := time.Now().Add(50 * time.Millisecond)
	var full int
	for i := 0; i < 5; i++ {
		if err := p.Pulse(far, time.Millisecond); errors.Is(err, gpio.ErrQueueFull) {
			full++
		}
	}
	if full == 0 {
		t.Fatal("queue of 1 took 5 pulses without complaint")
	}
	p.Close(context.Background())
}
