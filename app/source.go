package app

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
)

// SourceFactory opens the frame source a config describes, fitting frames to size.
type SourceFactory func(c config.Capture, size capture.Size, log *slog.Logger) (ClosableSource, error)

// ClosableSource is a Source the daemon owns: Len is the frames in one pass (0 for a
// camera, which has no end).
type ClosableSource interface {
	daemon.Source
	Len() int
}

// Sources are the daemon's frame sources by config kind (capture.source). A value,
// not a registry: tests and later issues (cameras) pass their own map to OpenSource.
func Sources() map[config.Source]SourceFactory {
	return map[config.Source]SourceFactory{
		config.SourceReplay: func(c config.Capture, size capture.Size, _ *slog.Logger) (ClosableSource, error) {
			// Config loading does not require the folder (eval and calibrate never read
			// it): the source that does names the key.
			if _, err := os.Stat(c.Replay.Path); errors.Is(err, fs.ErrNotExist) {
				path := c.Replay.Path
				if abs, err := filepath.Abs(path); err == nil {
					path = abs
				}
				return nil, fmt.Errorf("%w: capture.replay.path: replay folder %s not found (set capture.replay.path, or capture.source: camera)", capture.ErrSource, path)
			}
			return capture.NewReplay(capture.ReplayOptions{Path: c.Replay.Path, Loop: c.Replay.Loop, FPS: c.Replay.FPS, Fit: c.Replay.Fit, Size: size})
		},
		config.SourceCamera: func(c config.Capture, size capture.Size, log *slog.Logger) (ClosableSource, error) {
			if path, ok := c.Camera.FilePath(); ok {
				// jetson-inference's file://: the files play as a replay would, at fps
				return capture.NewReplay(capture.ReplayOptions{Path: path, FPS: c.Camera.FPS, Size: size})
			}
			return capture.NewCamera(CameraOptions(c.Camera, size, log))
		},
	}
}

// CameraOptions are the camera source's options from its config (zero durations take
// capture's defaults); frames are fitted to size.
func CameraOptions(c config.Camera, size capture.Size, log *slog.Logger) capture.CameraOptions {
	return capture.CameraOptions{
		Spec: c.Spec(size.W, size.H), Size: size, Latency: time.Duration(c.Latency),
		Stall: time.Duration(c.Stall), FirstFrame: time.Duration(c.FirstFrame),
		BackoffMin: time.Duration(c.BackoffMin), BackoffMax: time.Duration(c.BackoffMax),
		Buffers: capture.DefaultBuffers, Log: log,
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
