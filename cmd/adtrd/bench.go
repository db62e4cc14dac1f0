package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"gonum.org/v1/gonum/stat"

	"github.com/adtrd/adtrd/app"
	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/gpio"
)

// Latency is one stage's distribution over the frames measured, in milliseconds.
type Latency struct {
	P50, P90, P99, Max float64
}

func latency(ds []time.Duration) Latency {
	x := make([]float64, len(ds))
	for i, d := range ds {
		x[i] = float64(d) / float64(time.Millisecond)
	}
	sort.Float64s(x)
	if len(x) == 0 {
		return Latency{}
	}
	q := func(p float64) float64 { return stat.Quantile(p, stat.Empirical, x, nil) }
	return Latency{q(0.5), q(0.9), q(0.99), x[len(x)-1]}
}

// BenchReport is what `adtrd bench` measured.
type BenchReport struct {
	Frames       int                `json:"frames"`
	FPSAsked     float64            `json:"fps_asked"`        // 0: unpaced
	Camera       string             `json:"camera,omitempty"` // capture.camera.uri: frames at the camera's own rate
	PipelineFPS  float64            `json:"pipeline_fps"`
	BareFPS      float64            `json:"bare_invoke_fps"`
	Ratio        float64            `json:"pipeline_to_bare"`
	Stages       map[string]Latency `json:"stages_ms"`
	Dropped      uint64             `json:"dropped"`
	LateDecision uint64             `json:"late_decisions"`
}

// benchCmd runs the config's model and frame source through the whole pipeline onto
// simulated outputs (never the real reject valve) for n frames, then the bare Invoke
// loop on the same engine, and reports both.
func benchCmd(args []string, stdout, stderr io.Writer) int {
	const synopsis = "adtrd bench -c FILE [-n N] [--fps F] [--json]"
	fs := flag.NewFlagSet("adtrd bench", flag.ContinueOnError)
	cfgPath := fs.String("c", "", "config file (YAML): its model, threads, delegate and frame source (a replay, or a camera at its own rate)")
	n := fs.Int("n", 200, "frames to measure (after 5 of warm-up), 10..1000000")
	fps := fs.Float64("fps", -1, "pace the replay at this rate; 0: unpaced; default: the config's capture.replay.fps")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if code, ok := parseFlags(fs, synopsis, args, stdout, stderr); !ok {
		return code
	}
	usage := func(msg string) int {
		fmt.Fprintf(stderr, "adtrd bench: %s (usage: %s)\n", msg, synopsis)
		return 2
	}
	switch {
	case *cfgPath == "":
		return usage("-c FILE is required")
	case *n < 10 || *n > 1_000_000:
		return usage(fmt.Sprintf("-n %d: want 10..1000000", *n))
	case math.IsNaN(*fps) || math.IsInf(*fps, 0) || (*fps < 0 && *fps != -1) || *fps > 10000:
		return usage(fmt.Sprintf("--fps %v: want 0..10000", *fps))
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "adtrd bench: %v\n", err)
		return 2
	}
	if *fps >= 0 {
		if cfg.Capture.Source == config.SourceCamera {
			return usage("--fps paces a replay; a camera runs at its own rate (capture.camera.fps)")
		}
		cfg.Capture.Replay.FPS = *fps
	}
	cfg.Capture.Replay.Loop = true
	rep, err := bench(cfg, *n)
	if err != nil {
		fmt.Fprintf(stderr, "adtrd bench: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", " ")
		enc.Encode(rep)
		return 0
	}
	pace := "unpaced"
	switch {
	case rep.Camera != "":
		pace = "from the camera " + rep.Camera + " at its own rate"
	case rep.FPSAsked > 0:
		pace = fmt.Sprintf("paced at %g frames/s", rep.FPSAsked)
	}
	fmt.Fprintf(stdout, "%d frames, %s: pipeline %.1f frames/s, bare Invoke loop %.1f frames/s (pipeline/bare %.3f); dropped %d, late decisions %d\n",
		rep.Frames, pace, rep.PipelineFPS, rep.BareFPS, rep.Ratio, rep.Dropped, rep.LateDecision)
	fmt.Fprintf(stdout, "%-40s %9s %9s %9s %9s\n", "stage (ms)", "p50", "p90", "p99", "max")
	for _, s := range benchStages {
		l := rep.Stages[s]
		fmt.Fprintf(stdout, "%-40s %9.3f %9.3f %9.3f %9.3f\n", s, l.P50, l.P90, l.P99, l.Max)
	}
	return 0
}

var benchStages = []string{"capture hand-off (frame to inference)", "inference", "scoring", "end to end (frame to decision)", "bare Invoke"}

func bench(cfg config.Config, n int) (BenchReport, error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	build, err := builder()
	if err != nil {
		return BenchReport{}, err
	}
	gen, err := build(1, cfg, quiet)
	if err != nil {
		return BenchReport{}, err
	}
	defer gen.Close()
	size := capture.Size{W: gen.Meta.Input.Width, H: gen.Meta.Input.Height}
	src, err := app.OpenSource(app.Sources(), cfg.Capture, size, quiet)
	if err != nil {
		return BenchReport{}, err
	}
	defer src.Close()
	sim, err := gpio.NewSim("", quiet)
	if err != nil {
		return BenchReport{}, err
	}
	defer sim.Close()
	tr, err := gpio.New(gpio.Options{
		Reject: gpio.Output{Name: "reject", Pin: sim.Pin("reject")}, Alarm: gpio.Output{Name: "alarm", Pin: sim.Pin("alarm")},
		Ready: gpio.Output{Name: "ready", Pin: sim.Pin("ready")},
		Delay: time.Duration(cfg.Output.Reject.Delay), Pulse: time.Duration(cfg.Output.Reject.Pulse),
		InFlight: cfg.Tracking.InFlight, FailSafe: daemon.FailSafe(cfg.FailSafe), Log: quiet,
	})
	if err != nil {
		return BenchReport{}, err
	}
	tr.Start()
	defer tr.Close()
	p, err := daemon.New(daemon.Settings{Queue: cfg.Capture.Queue}, gen, src, tr, quiet)
	if err != nil {
		return BenchReport{}, err
	}
	const warm = 5
	var (
		mu               sync.Mutex
		recs             []events.Record
		first, last      time.Time
		ctx, cancel      = context.WithCancel(context.Background())
		sub              = p.Events().Subscribe(1024)
		collected        = make(chan struct{})
		wait, inf, score []time.Duration
		e2e              []time.Duration
	)
	defer cancel()
	stop := make(chan struct{})
	go func() {
		defer close(collected)
		for {
			var e events.Event
			select {
			case e = <-sub.C():
			case <-stop:
				return
			}
			if e.Kind != events.EventDecision {
				continue
			}
			mu.Lock()
			recs = append(recs, e.Record)
			switch k := len(recs); {
			case k == warm:
				first = e.Time
			case k == warm+n:
				last = e.Time
				cancel()
			}
			mu.Unlock()
		}
	}()
	_, err = p.Run(ctx)
	close(stop)
	<-collected
	sub.Close()
	if err != nil {
		return BenchReport{}, err
	}
	mu.Lock()
	defer mu.Unlock()
	if len(recs) < warm+n {
		return BenchReport{}, fmt.Errorf("the source gave %d frames, want %d", len(recs), warm+n)
	}
	for _, r := range recs[warm : warm+n] {
		wait, inf, score = append(wait, r.Wait), append(inf, r.Infer), append(score, r.Scoring)
		e2e = append(e2e, r.Wait+r.Infer+r.Scoring)
	}
	rep := BenchReport{Frames: n, FPSAsked: cfg.Capture.Replay.FPS, Stages: map[string]Latency{},
		Dropped: p.Stats.Dropped.Load(), LateDecision: tr.Stats().LateDecisions}
	if cfg.Capture.Source == config.SourceCamera {
		rep.FPSAsked, rep.Camera = 0, cfg.Capture.Camera.URI
	}
	// recs[warm] was decided at first; n-1 more decisions followed until last.
	rep.PipelineFPS = float64(n-1) / last.Sub(first).Seconds()
	bare := make([]time.Duration, n)
	in := gen.Engine.Input()
	start := time.Now()
	for i := range bare {
		t0 := time.Now()
		in[0] = byte(i) // a changing input, as frames are
		if err := gen.Engine.Invoke(); err != nil {
			return BenchReport{}, err
		}
		bare[i] = time.Since(t0)
	}
	rep.BareFPS = float64(n) / time.Since(start).Seconds()
	rep.Ratio = rep.PipelineFPS / rep.BareFPS
	for i, d := range [][]time.Duration{wait, inf, score, e2e, bare} {
		rep.Stages[benchStages[i]] = latency(d)
	}
	return rep, nil
}
