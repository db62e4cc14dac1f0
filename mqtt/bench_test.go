package mqtt

import (
	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/internal/testlib"

	"runtime"
	"testing"
	"time"

	"github.com/adtrd/adtrd/config"
)

// BenchmarkPublish is the publisher's cost per decision with decisions: all.
//
// consumer: what the bus consumer does for one event (encode, into the ring), the
// only work on the path from the bus; the sender drains the ring to a connected
// broker meanwhile, and its allocations (paho's) are counted too, as they are
// process-wide.
//
// consumer-alone: the same without a sender (not started): the encoding's own cost.
//
// end-to-end: bus to broker acknowledgement, events/s through a loopback mosquitto.
func BenchmarkPublish(b *testing.B) {
	br := testlib.StartMosquitto(b)
	run := func(b *testing.B, bus *events.Bus, buffer int) *Publisher {
		p := newPublisher(b, br.URL(), bus, func(o *Options) {
			o.Config.Decisions = config.DecisionsAll
			o.Config.Buffer = buffer
		})
		if err := p.Start(); err != nil {
			b.Fatal(err)
		}
		waitFor(b, "the publisher to connect", 5*time.Second, func() bool { return p.Stats().Connected })
		return p
	}
	e := decision(1, events.Reject)

	b.Run("consumer", func(b *testing.B) {
		p := run(b, events.NewBus(), 10_000) // faster than the sender: full, the oldest dropped
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			e.Record.Seq = uint64(i)
			p.handle(e)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})

	b.Run("consumer-alone", func(b *testing.B) { // the same, no sender beside it
		p := newPublisher(b, br.URL(), events.NewBus(), func(o *Options) { o.Config.Decisions, o.Config.Buffer = config.DecisionsAll, 10_000 })
		b.ReportAllocs()
		for i := range b.N {
			e.Record.Seq = uint64(i)
			p.handle(e)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})

	b.Run("end-to-end", func(b *testing.B) {
		bus := events.NewBus()
		p := run(b, bus, 1_000_000) // holds what the sender has not caught up with
		base := p.Stats().Published
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			for len(p.sub.C()) > busBuffer/2 { // faster than any camera: keep the bus from dropping
				runtime.Gosched()
			}
			e.Record.Seq = uint64(i)
			bus.Publish(e)
		}
		waitFor(b, "every decision acknowledged", time.Minute, func() bool { return p.Stats().Published-base >= uint64(b.N) })
		b.StopTimer()
		if s := p.Stats(); s.BusDropped != 0 || s.Dropped != 0 {
			b.Errorf("stats %+v: dropped", s)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
