package daemon_test

import (
	"log/slog"
	"testing"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/engine/enginetest"
	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/model"
)

// fakeEngine is enginetest.Fake (a fixed map at once, after the metadata and hash
// checks): the daemon's tests are about the line, not inference. The real engine's
// reloads are tested by TestReloadKeepsTheOldGenerationOnEveryFailure and
// TestReloadWhileRunning.
type fakeEngine = enginetest.Fake

func newFake(meta *model.Metadata) fakeEngine { return enginetest.NewFake(meta) }

var openFake = enginetest.Open

// fakeBuild is a daemon.Builder over fakeEngine.
func fakeBuild(n uint64, cfg config.Config, log *slog.Logger) (*daemon.Generation, error) {
	o, err := openFake(cfg.Model, log)
	if err != nil {
		return nil, err
	}
	return daemon.NewGeneration(n, cfg, o.Engine, o.Meta, o.SHA256)
}

// closeCounting is a fakeEngine that records its Close.
type closeCounting struct {
	fakeEngine
	closed chan struct{}
}

func (e *closeCounting) Close() error { close(e.closed); return nil }

// collect hands every event of sub to fn on a goroutine of its own, the way a real
// subscriber (metrics, MQTT) reads the bus; stop waits until what was published
// before it has been handed over.
func collect(t testing.TB, sub *events.Subscription, fn func(events.Event)) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case e := <-sub.C():
				fn(e)
			case <-done:
				for {
					select {
					case e := <-sub.C():
						fn(e)
					default:
						return
					}
				}
			}
		}
	}()
	var once bool
	stop = func() {
		if !once {
			once = true
			close(done)
			<-finished
		}
	}
	t.Cleanup(stop)
	return stop
}
