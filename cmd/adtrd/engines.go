package main

import (
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/engine"
	"github.com/adtrd/adtrd/engine/tflite"
)

// engines are the inference runtimes this binary has, by model.engine: the one
// place a new engine is added (README "Adding an engine").
func engines() (engine.Factories, error) {
	return engine.New(
		engine.Named{Name: tflite.Name, Open: tflite.Opener},
	)
}

// builder opens generations on this binary's engines.
func builder() (daemon.Builder, error) {
	f, err := engines()
	if err != nil {
		return nil, err
	}
	return daemon.Build(f), nil
}
