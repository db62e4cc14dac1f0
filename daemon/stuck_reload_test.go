package daemon_test

import (
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/model"
)

// A reload stuck in a read that blocks (a hung network mount; here a builder that
// does not return) must not hold the rest of the daemon: the running config and status
// answer at once and Close returns, so a stop signal still stops the process. When the
// stuck reload finally returns it finds the reloader closed and frees what it built.
func TestStuckReloadDoesNotHoldCloseOrStatus(t *testing.T) {
	d := newReloadDir(t)
	os.WriteFile(d.cfg, d.body("a.tflite", 10.0, ""), 0o644)
	entered, release := make(chan struct{}), make(chan struct{})
	built := &closeCounting{closed: make(chan struct{})}
	build := func(n uint64, cfg config.Config, log *slog.Logger) (*daemon.Generation, error) {
		if n == 1 {
			return fakeBuild(n, cfg, log)
		}
		close(entered)
		<-release
		meta, err := model.Load(cfg.Model.MetadataPath())
		if err != nil {
			return nil, err
		}
		built.fakeEngine = newFake(meta)
		return daemon.NewGeneration(n, cfg, built, meta, "stuck")
	}
	rl, _, err := daemon.NewReloader(d.cfg, build, nil, nil, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(d.cfg, d.body("a.tflite", 12.0, ""), 0o644)
	done := make(chan error, 1)
	go func() { done <- rl.Reload("test") }()
	<-entered

	answered := make(chan struct{})
	go func() {
		if th := rl.Config().Threshold; th != 10.0 {
			t.Errorf("running threshold %v, want the old 10", th)
		}
		rl.Status()
		rl.Meta()
		if err := rl.Close(); err != nil {
			t.Error(err)
		}
		if err := rl.Close(); err != nil { // twice is fine
			t.Error(err)
		}
		close(answered)
	}()
	select {
	case <-answered:
	case <-time.After(2 * time.Second):
		t.Fatal("Config/Status/Close waited for the stuck reload")
	}
	close(release)
	if err := <-done; !errors.Is(err, daemon.ErrNotRunning) {
		t.Fatalf("late reload: %v, want ErrNotRunning", err)
	}
	select {
	case <-built.closed:
	case <-time.After(time.Second):
		t.Fatal("the late reload's generation was not closed")
	}
}
