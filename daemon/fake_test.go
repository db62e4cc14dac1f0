package daemon_test

import (
	"fmt"
	"log/slog"
	"os"
	"testing"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/engine"
	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/model"
)

// fakeEngine stands in for TFLite where a test is about reloads, not inference: it
// checks the model file against its metadata as the real engine does (so a truncated or
// foreign model is still refused) and then "infers" at once, a fixed map, so the test's
// timing does not depend on how heavy the demo graph is or how loaded the machine is.
// The real engine's reloads are tested by TestReloadKeepsTheOldGenerationOnEveryFailure
// and TestReloadWhileRunning.
type fakeEngine struct {
	in   []byte
	out  []int8
	meta *model.Metadata // the tensors it reports are the ones this metadata describes
}

// newFake is a fakeEngine for meta's model.
func newFake(meta *model.Metadata) fakeEngine {
	return fakeEngine{in: make([]byte, meta.Input.Width*meta.Input.Height*3), out: make([]int8, meta.Grid[0]*meta.Grid[1]), meta: meta}
}

func (e *fakeEngine) Input() []byte         { return e.in }
func (e *fakeEngine) Invoke() error         { return nil }
func (e *fakeEngine) Output() engine.Output { return engine.Output{Int8: e.out} }
func (e *fakeEngine) Close() error          { return nil }
func (e *fakeEngine) Tensors() (in, out model.TensorInfo) {
	m := e.meta
	return model.TensorInfo{Type: m.Input.DType, Shape: []int{1, m.Input.Height, m.Input.Width, 3}},
		model.TensorInfo{Type: m.Output.DType, Shape: []int{1, m.Grid[0], m.Grid[1]}, Scale: m.Output.Scale, ZeroPoint: m.Output.ZeroPoint}
}

// openFake opens c's model on fakeEngine: the metadata and the graph's hash checked
// as an engine must, no runtime (an engine.Opener).
func openFake(c config.Model, _ *slog.Logger) (engine.Opened, error) {
	meta, err := model.Load(c.MetadataPath())
	if err != nil {
		return engine.Opened{}, err
	}
	data, err := os.ReadFile(c.Path)
	if err != nil {
		return engine.Opened{}, fmt.Errorf("%w: %v", model.ErrMetadata, err)
	}
	sum, err := meta.CheckGraph(c.Path, data)
	if err != nil {
		return engine.Opened{}, err
	}
	e := newFake(meta)
	return engine.Opened{Engine: &e, Meta: meta, SHA256: sum}, nil
}

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
