package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/adtrd/adtrd/app"
	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
)

// benchCmd runs the config's model and frame source through the whole pipeline onto
// simulated outputs (never the real reject valve) for n frames, then the bare Invoke
// loop on the same engine, and reports both.
func benchCmd(args []string, stdout, stderr io.Writer) int {
	const synopsis = "adtrd bench -c FILE [-n N] [--fps F] [--engines LIST] [--json]"
	fs := flag.NewFlagSet("adtrd bench", flag.ContinueOnError)
	cfgPath := fs.String("c", "", "config file (YAML): its model, threads, delegate and frame source (a replay, or a camera at its own rate)")
	n := fs.Int("n", 200, "frames to measure (after 5 of warm-up), 10..1000000")
	fps := fs.Float64("fps", -1, "pace the replay at this rate; 0: unpaced; default: the config's capture.replay.fps")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	variants := fs.String("engines", "", "bench these engines side by side on the same frames, e.g. tflite,litert,litert:gpu,onnxruntime (onnxruntime runs the .onnx beside model.path)")
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
	build, err := builder()
	if err != nil {
		fmt.Fprintf(stderr, "adtrd bench: %v\n", err)
		return 1
	}
	if *variants != "" || flagGiven(fs, "engines") {
		// Every item checked before any runs: a typo must not cost the others' minutes.
		var cfgs []config.Config
		seen := map[string]bool{}
		for _, spec := range strings.Split(*variants, ",") {
			spec = strings.TrimSpace(spec)
			if seen[spec] {
				return usage(fmt.Sprintf("--engines: %q given twice", spec))
			}
			seen[spec] = true
			vc, err := app.EngineVariant(cfg, spec)
			if err != nil {
				return usage("--engines: " + err.Error())
			}
			cfgs = append(cfgs, vc)
		}
		return benchSideBySide(cfgs, build, *n, *asJSON, stdout, stderr)
	}
	rep, err := app.Bench(cfg, build, *n)
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
	for _, s := range app.BenchStages {
		l := rep.Stages[s]
		fmt.Fprintf(stdout, "%-40s %9.3f %9.3f %9.3f %9.3f\n", s, l.P50, l.P90, l.P99, l.Max)
	}
	return 0
}

// benchSideBySide benches each engine variant on the same frames in turn and prints
// one row each; a variant that cannot run is said in its row, the rest still run, and
// the exit status is 1 if any could not.
func benchSideBySide(cfgs []config.Config, build daemon.Builder, n int, asJSON bool, stdout, stderr io.Writer) int {
	type row struct {
		Variant string           `json:"variant"`
		Report  *app.BenchReport `json:"report,omitempty"`
		Error   string           `json:"error,omitempty"`
	}
	var rows []row
	failed := 0
	for _, vc := range cfgs {
		name := vc.Model.Engine
		if name == "litert" && vc.Model.LiteRT.Accelerator == config.AcceleratorGPU {
			name = "litert:gpu"
		}
		rep, err := app.Bench(vc, build, n)
		if err != nil {
			failed++
			rows = append(rows, row{Variant: name, Error: strings.ReplaceAll(err.Error(), "\n", "; ")})
			continue
		}
		rows = append(rows, row{Variant: name, Report: &rep})
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", " ")
		enc.Encode(rows)
	} else {
		fmt.Fprintf(stdout, "%d frames each, same source; inference ms from the pipeline, CPU ms per frame of the bare loop\n", n)
		fmt.Fprintf(stdout, "%-14s %10s %10s %8s %8s %8s %8s  %s\n", "engine", "pipeline/s", "bare/s", "p50 ms", "p90 ms", "p99 ms", "CPU ms", "where")
		for _, r := range rows {
			if r.Report == nil {
				fmt.Fprintf(stdout, "%-14s cannot run: %s\n", r.Variant, r.Error)
				continue
			}
			l := r.Report.Stages["inference"]
			fmt.Fprintf(stdout, "%-14s %10.1f %10.1f %8.2f %8.2f %8.2f %8.2f  %s\n", r.Variant, r.Report.PipelineFPS, r.Report.BareFPS, l.P50, l.P90, l.P99, r.Report.CPUPerFrame, r.Report.Engine)
		}
	}
	if failed > 0 {
		fmt.Fprintf(stderr, "adtrd bench: %d of %d engines could not run (their rows say why)\n", failed, len(cfgs))
		return 1
	}
	return 0
}

// flagGiven says whether the command line set the flag (an empty --engines ” too).
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}
