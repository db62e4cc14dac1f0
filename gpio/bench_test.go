package gpio_test

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	adgpio "github.com/adtrd/adtrd/gpio"
)

// BenchmarkRejectEdge gives b.N reject pulses on the simulated backend and the real
// clock, one part every 2 ms, each due 50 ms after its stamp, and reports how late
// each rising and falling edge came against its schedule (p50, p99, max). `make bench`
// runs it with -benchtime=10000x. The simulated pin records time.Now() in Out, which
// is where a real line's ioctl would be issued.
//
// ADTRD_BENCH_NOSPIN=1 adds a run without the spin, to show what it is for (its
// pulses come about 0.6 ms late and many merge; its pairing of pulses to parts is
// then only approximate).
func BenchmarkRejectEdge(b *testing.B) {
	spins := []time.Duration{2 * time.Millisecond}
	if os.Getenv("ADTRD_BENCH_NOSPIN") != "" {
		spins = append(spins, 0)
	}
	for _, spin := range spins {
		b.Run("spin="+spin.String(), func(b *testing.B) { benchEdges(b, spin) })
	}
}

func benchEdges(b *testing.B, spin time.Duration) {
	sim, _ := adgpio.NewSim("", quiet)
	const (
		delay = 50 * time.Millisecond
		width = 500 * time.Microsecond
		every = 2 * time.Millisecond
	)
	tr, err := adgpio.New(adgpio.Options{
		Reject: adgpio.Output{Name: "reject", Pin: sim.Pin("reject")},
		Delay:  delay, Pulse: width, InFlight: 64, Spin: spin, Log: quiet,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	tr.Start()
	due := make([]time.Time, 0, b.N)
	start := time.Now()
	b.ResetTimer()
	for i := range b.N {
		at := start.Add(time.Duration(i) * every)
		time.Sleep(time.Until(at))
		due = append(due, at.Add(delay))
		tr.Decide(tr.Stamp(at), true)
	}
	if err := tr.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	// Pair each part's schedule with the pulse that served it. A part whose time came
	// while the previous pulse was still on (that one was late by more than the gap)
	// was merged into it: counted, not timed.
	type pulse struct{ on, off time.Time }
	var ps []pulse
	for _, e := range sim.Edges()[1:] { // the first is the initial inactive level
		if e.Level == gpio.High {
			ps = append(ps, pulse{on: e.At})
		} else {
			ps[len(ps)-1].off = e.At
		}
	}
	var on, off []time.Duration
	merged, j := 0, 0
	for _, d := range due {
		switch {
		case j > 0 && !ps[j-1].off.Before(d):
			merged++
		case j < len(ps) && !ps[j].on.Before(d):
			on = append(on, ps[j].on.Sub(d))
			off = append(off, (ps[j].off.Sub(ps[j].on) - width).Abs())
			j++
		default:
			b.Fatalf("no pulse for the part due at %v", d.Sub(start))
		}
	}
	if j != len(ps) {
		b.Fatalf("%d pulses for %d parts", len(ps), b.N)
	}
	report(b, "on", on)
	report(b, "width-error", off) // |measured width - width|
	b.ReportMetric(float64(merged), "merged")
}

func report(b *testing.B, name string, d []time.Duration) {
	slices.Sort(d)
	if d[0] < 0 {
		b.Fatalf("%s edge %v early", name, d[0])
	}
	us := func(q float64) float64 { return float64(d[int(q*float64(len(d)-1))]) / 1e3 }
	b.ReportMetric(us(0.5), name+"-p50-µs")
	b.ReportMetric(us(0.99), name+"-p99-µs")
	b.ReportMetric(us(1), name+"-max-µs")
}
