package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"gonum.org/v1/gonum/stat"

	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/events"
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
	// Engine is model.engine, with its accelerator or placement where it says one.
	Engine string `json:"engine"`
	// CPUPerFrame is the process's CPU time (user + system, all threads) per frame of
	// the bare Invoke loop, in ms: a GPU engine should spend little; on lavapipe the
	// "GPU" is the CPU, and this says so.
	CPUPerFrame float64 `json:"bare_cpu_ms_per_frame"`
}

// BenchStages are the stages a BenchReport times, in the order of the pipeline.
var BenchStages = []string{"capture hand-off (frame to inference)", "inference", "scoring", "end to end (frame to decision)", "bare Invoke"}

// Bench runs cfg's model and frame source through the whole pipeline onto simulated
// outputs (never the real reject valve) for n frames after 5 of warm-up, then the
// bare Invoke loop on the same engine for n more, and reports both. build makes the
// generation (the daemon's vets the model in a child first, as check and run do).
func Bench(cfg config.Config, build daemon.Builder, n int) (BenchReport, error) {
	quiet := slog.New(slog.DiscardHandler)
	gen, err := build(1, cfg, quiet)
	if err != nil {
		return BenchReport{}, err
	}
	defer gen.Close()
	size := capture.Size{W: gen.Meta.Input.Width, H: gen.Meta.Input.Height}
	src, err := OpenSource(Sources(), cfg.Capture, size, quiet)
	if err != nil {
		return BenchReport{}, err
	}
	defer src.Close()
	// The configured line, its outputs simulated: a bench never moves the real valve.
	sim := cfg
	sim.Output.Backend, sim.Output.SimCSV, sim.Output.Reject.DelayCounts, sim.Output.Heartbeat.Period = config.BackendSim, "", 0, 0
	line, err := OpenLine(sim, quiet)
	if err != nil {
		return BenchReport{}, err
	}
	defer line.Close()
	line.Start()
	tr := line.Tracker
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
	rep.Engine = cfg.Model.Engine
	if gen.Placement != "" {
		rep.Engine += " (" + gen.Placement + ")"
	}
	bare := make([]time.Duration, n)
	in := gen.Engine.Input()
	cpu0 := cpuTime()
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
	rep.CPUPerFrame = float64(cpuTime()-cpu0) / float64(time.Millisecond) / float64(n)
	rep.Ratio = rep.PipelineFPS / rep.BareFPS
	for i, d := range [][]time.Duration{wait, inf, score, e2e, bare} {
		rep.Stages[BenchStages[i]] = latency(d)
	}
	return rep, nil
}

// ErrVariant: an --engines item that names no engine variant this build can set up.
var ErrVariant = errors.New("engine variant")

// EngineVariant is cfg with its model run on another engine, for benches side by
// side: "tflite", "onnxruntime" (the ONNX graph the toolkit exports beside
// model.path, <name>.onnx), "litert" or "litert:gpu" (model.litert.accelerator).
func EngineVariant(cfg config.Config, spec string) (config.Config, error) {
	name, acc, hasAcc := strings.Cut(spec, ":")
	out := cfg
	out.Model.Engine, out.Model.Metadata = name, ""
	base := strings.TrimSuffix(strings.TrimSuffix(cfg.Model.Path, ".onnx"), ".tflite")
	switch name {
	case "tflite", "litert":
		out.Model.Path = base + ".tflite"
	case "onnxruntime":
		out.Model.Path = base + ".onnx"
	default:
		return cfg, fmt.Errorf("%w: %q: want tflite, onnxruntime, litert, litert:cpu or litert:gpu", ErrVariant, spec)
	}
	switch {
	case hasAcc && name != "litert":
		return cfg, fmt.Errorf("%w: %q: only litert takes an accelerator (litert:cpu, litert:gpu)", ErrVariant, spec)
	case name == "litert" && ((!hasAcc && acc == "") || acc == "cpu"):
		out.Model.LiteRT.Accelerator = config.AcceleratorCPU
	case name == "litert" && acc == "gpu":
		out.Model.LiteRT.Accelerator = config.AcceleratorGPU
		out.Model.LiteRT.OnFailure = config.OnFailureRefuse // a bench of the CPU under the GPU's name would lie
	case name == "litert":
		return cfg, fmt.Errorf("%w: %q: unknown accelerator %q (want litert:cpu or litert:gpu)", ErrVariant, spec, acc)
	}
	if out.Model.Path != cfg.Model.Path {
		out.Model.SHA256 = "" // the pin is the configured graph's
	}
	if _, err := os.Stat(out.Model.Path); err != nil {
		return cfg, fmt.Errorf("%w: %q: %s: not found (the toolkit exports .tflite and .onnx side by side)", ErrVariant, spec, out.Model.Path)
	}
	return out, nil
}
