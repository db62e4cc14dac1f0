package app

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
)

// Check finds what starting cfg would find, short of driving hardware: the model as
// build opens it (metadata, the graph's hash against it and against
// model.sha256, the graph loaded by TFLite and warmed up, its tensors against the
// metadata, the threshold against what the model can score), the frame source opened
// and closed, the simulated outputs' CSV writable, and each wired GPIO line found by
// name. `adtrd check` runs it; every problem found is in the joined error, and what
// would only be warned about at start (a threshold under the good parts' scores) is
// logged at Warn.
func Check(cfg config.Config, build daemon.Builder, log *slog.Logger) error {
	var errs []error
	// The source needs the model's input size only to decode frames, which opening
	// does not do; without a model, 1x1 still lets the source check its own settings.
	size := capture.Size{W: 1, H: 1}
	if gen, err := build(0, cfg, log); err != nil {
		errs = append(errs, err)
	} else {
		size = capture.Size{W: gen.Meta.Input.Width, H: gen.Meta.Input.Height}
		if warning, err := gen.CheckThreshold(); err != nil {
			errs = append(errs, err)
		} else if warning != "" {
			log.Warn("threshold: " + warning)
		}
		if err := gen.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if _, file := cfg.Capture.Camera.FilePath(); cfg.Capture.Source == config.SourceCamera && !file {
		// The pipeline runs to its first frame (a few seconds at most): only running it
		// finds heads that cannot link or negotiate, and frames of the wrong size. A
		// camera another process holds is reported as not reachable now.
		// The child's own lines are not the check's warnings: the error carries
		// GStreamer's reason in one line.
		opt := CameraOptions(cfg.Capture.Camera, size, slog.New(slog.DiscardHandler))
		opt.Triggered = cfg.Input.Trigger.Wired()
		if err := capture.CheckCamera(opt); err != nil {
			errs = append(errs, err) // names its key
		}
	} else if cfg.Capture.Source == config.SourceReplay && cfg.Capture.Replay.Path == "" {
		// No replay folder to open: config loading refuses an empty path, so only a
		// caller that found none and reports that itself passes one (adtrd check on a
		// config that names only a model).
	} else if src, err := OpenSource(Sources(), cfg.Capture, size, log); err != nil {
		errs = append(errs, err)
	} else if err := src.Close(); err != nil {
		errs = append(errs, err)
	}
	if cfg.Output.Backend == config.BackendSim && cfg.Output.SimCSV != "" {
		if err := checkWritable(cfg.Output.SimCSV); err != nil {
			errs = append(errs, fmt.Errorf("output.sim_csv: %w", err))
		}
	}
	if err := CheckLines(cfg, log); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// OnlyUnreachable says whether every problem in Check's error is a camera that
// cannot be reached now (capture.ErrUnreachable): the config itself passed, and
// `adtrd check` exits 1 instead of 2.
func OnlyUnreachable(err error) bool {
	if err == nil {
		return false
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !OnlyUnreachable(e) {
				return false
			}
		}
		return len(j.Unwrap()) > 0
	}
	return errors.Is(err, capture.ErrUnreachable)
}

// checkWritable reports whether run could open path for writing, without changing
// it: an existing file is opened for writing and closed (not truncated); for a new
// one, a temporary file is made in its folder and removed.
func checkWritable(path string) error {
	if fi, err := os.Stat(path); err == nil {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file", path)
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		return f.Close()
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".adtrd-check-*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the temporary name would only confuse
		}
		return fmt.Errorf("%s: cannot create it in %s: %w", path, dir, err)
	}
	name := f.Name()
	return errors.Join(f.Close(), os.Remove(name))
}
