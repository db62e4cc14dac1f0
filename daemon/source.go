package daemon

import (
	"fmt"
	"log/slog"

	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/config"
)

// SourceFactory opens the frame source a config describes, fitting frames to size.
type SourceFactory func(c config.Capture, size capture.Size, log *slog.Logger) (ClosableSource, error)

// ClosableSource is a Source the daemon owns: Len is the frames in one pass (0 for a
// camera, which has no end).
type ClosableSource interface {
	Source
	Len() int
}

// Sources are the daemon's frame sources by config kind (capture.source). A value,
// not a registry: tests and later issues (cameras) pass their own map to OpenSource.
func Sources() map[config.Source]SourceFactory {
	return map[config.Source]SourceFactory{
		config.SourceReplay: func(c config.Capture, size capture.Size, _ *slog.Logger) (ClosableSource, error) {
			return capture.NewReplay(capture.ReplayOptions{Path: c.Replay.Path, Loop: c.Replay.Loop, FPS: c.Replay.FPS, Fit: capture.Fit(c.Replay.Fit), Size: size})
		},
	}
}

// OpenSource opens cfg's source with the factory keyed by its kind.
func OpenSource(factories map[config.Source]SourceFactory, c config.Capture, size capture.Size, log *slog.Logger) (ClosableSource, error) {
	f, ok := factories[c.Source]
	if !ok {
		return nil, fmt.Errorf("%w: capture.source %s has no source in this build", capture.ErrSource, c.Source)
	}
	return f(c, size, log.With("component", "capture", "source", c.Source.String()))
}
