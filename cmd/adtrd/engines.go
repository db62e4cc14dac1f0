package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/adtrd/adtrd/app"
	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/engine"
	"github.com/adtrd/adtrd/engine/litert"
	"github.com/adtrd/adtrd/engine/onnxruntime"
	"github.com/adtrd/adtrd/engine/tflite"
	"github.com/adtrd/adtrd/engine/vet"
)

// engines are the inference runtimes this binary has, by model.engine: the one
// place a new engine is added (README "Adding an engine").
func engines() (engine.Factories, error) {
	return engine.New(
		engine.Named{Name: tflite.Name, Open: tflite.Opener},
		engine.Named{Name: onnxruntime.Name, Open: onnxruntime.Opener},
		engine.Named{Name: litert.Name, Open: litert.Opener},
	)
}

// builder opens generations on this binary's engines for the line tools (check,
// eval, calibrate, bench), each model loaded and warmed up in a vetting child first
// (engine/vet): a graph that crashes or hangs the runtime fails the command with one
// line (after the 60 s limit for a hang) instead of a crash dump or a hang.
func builder() (daemon.Builder, error) {
	f, err := engines()
	if err != nil {
		return nil, err
	}
	build := app.Build(f)
	exe, err := os.Executable()
	if err != nil {
		return build, nil // nowhere to vet from: loaded as run loads its first model
	}
	return func(n uint64, cfg config.Config, log *slog.Logger) (*daemon.Generation, error) {
		if !f.Has(cfg.Model.Engine) {
			return build(n, cfg, log) // the factories' own error, with the key's line: no child for that
		}
		v := &vet.Vetter{Exe: exe, Limits: vet.DefaultLimits, Log: log}
		if err := v.Vet(context.Background(), cfg.Model); err != nil {
			return nil, err
		}
		return build(n, cfg, log)
	}, nil
}

// vetCmd is the vetting child (vet.Serve): the model section on stdin, opened on this
// binary's engines with its warm-up inference; the engine's log lines on stderr.
func vetCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	f, err := engines()
	if err != nil {
		fmt.Fprintf(stdout, "adtrd %s: %v\n", vet.Command, err)
		return 1
	}
	open := func(m config.Model, log *slog.Logger) (engine.Opened, error) {
		return f.Open(config.Config{Model: m}, log)
	}
	return vet.Serve(args, stdin, stdout, open, slog.New(slog.NewTextHandler(stderr, nil)))
}
