// Package app turns a config into the running line's objects, the one place that does
// (the generation on its engine, the frame source, the pins and tracker, the
// operators' view), and owns their start and stop order (Run) and `adtrd check`.
package app

import (
	"log/slog"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/engine"
)

// Build is the Builder that opens cfg's model on the engine model.engine names
// (with a warm-up inference) and completes the generation around it.
func Build(engines engine.Factories) daemon.Builder {
	return func(n uint64, cfg config.Config, log *slog.Logger) (*daemon.Generation, error) {
		o, err := engines.Open(cfg, log)
		if err != nil {
			return nil, err
		}
		return daemon.NewGeneration(n, cfg, o.Engine, o.Meta, o.SHA256)
	}
}
