// Package gpio is adtrd's line side: it tracks each part from the camera to the ejector
// and drives the reject, alarm, ready and heartbeat outputs from its inputs' edges.
//
// Pins are periph.io/x/conn/v3 pins (any driver: the Linux character device in
// gpio/hostgpio, periph's gpiotest in tests, or Sim here); time comes from a Clock so
// that tests can run the schedule on a fake one.
package gpio

import (
	"errors"
	"fmt"
	"time"

	"periph.io/x/conn/v3/gpio"
)

var (
	// ErrConfig wraps every problem with Options.
	ErrConfig = errors.New("gpio: bad options")
	// ErrClosed is returned for requests after Close.
	ErrClosed = errors.New("gpio: tracker closed")
)

// OutputPin is what the tracker needs of an output line.
type OutputPin interface {
	Out(l gpio.Level) error
}

// InputPin is what the tracker needs of an input line (periph's gpio.PinIn subset).
type InputPin interface {
	In(pull gpio.Pull, edge gpio.Edge) error
	Read() gpio.Level
	WaitForEdge(timeout time.Duration) bool
	Halt() error
}

// EdgeEvent is one edge of an input as the kernel saw it: its direction and when,
// on the tracker's clock.
type EdgeEvent struct {
	Rising bool
	At     time.Time
}

// EdgeReader is an input that reports every edge with its direction and the
// kernel's timestamp (hostgpio's lines, from the GPIO character device's event
// queue). The tracker uses it when an InputPin has it: a pulse shorter than the
// watcher's wake-up is then neither lost nor stamped late. Otherwise it waits for an
// edge and reads the level. ReadEdges waits up to timeout for at least one edge and
// fills out with what has arrived; ErrNoEdges means the pin cannot report edges
// this way after all.
type EdgeReader interface {
	ReadEdges(timeout time.Duration, out []EdgeEvent) (int, error)
}

// ErrNoEdges: an EdgeReader that cannot read the kernel's edge events.
var ErrNoEdges = errors.New("gpio: no edge events on this line")

// Clock is the tracker's time source; Real is the monotonic clock.
type Clock interface {
	Now() time.Time
	NewTimer() Timer
}

// Timer is a resettable one-shot timer that starts stopped.
type Timer interface {
	C() <-chan time.Time
	Reset(d time.Duration)
	Stop()
}

// Real is the system's monotonic clock.
var Real Clock = realClock{}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer() Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return realTimer{t}
}

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time   { return r.t.C }
func (r realTimer) Reset(d time.Duration) { r.t.Reset(d) }
func (r realTimer) Stop()                 { r.t.Stop() }

// FailSafe is what happens to a part that gets no decision in time.
type FailSafe int

const (
	FailReject FailSafe = iota // pulse the reject output as if it were bad (the default)
	FailPass                   // let it through, log and count it
	FailAlarm                  // let it through and raise the alarm output
)

func (f FailSafe) String() string {
	switch f {
	case FailReject:
		return "reject"
	case FailPass:
		return "pass"
	case FailAlarm:
		return "alarm"
	}
	return fmt.Sprintf("failsafe(%d)", int(f))
}

// Cause is why a part fell to the fail-safe.
type Cause int

const (
	CauseNone       Cause = iota
	CauseLate             // no decision by the time the reject had to be scheduled
	CauseDropped          // its frame was dropped because the pipeline was behind
	CauseBadFrame         // its frame could not be read
	CauseInferError       // inference or scoring failed
	CauseCameraLost       // the frame source failed
	CauseNoFrame          // triggered, but capture never took it
	CauseStopped          // the run stopped before its frame was decided
	// CauseOverrun is no part's cause: it names the alarm raised when the parts that
	// fell to the fail-safe because the pipeline was behind (frame dropped, decision
	// late) say the line cannot keep up (see OverrunParts).
	CauseOverrun
	causeCount
)

func (c Cause) String() string {
	switch c {
	case CauseNone:
		return "none"
	case CauseLate:
		return "decision late"
	case CauseDropped:
		return "frame dropped"
	case CauseBadFrame:
		return "bad frame"
	case CauseInferError:
		return "inference error"
	case CauseCameraLost:
		return "camera lost"
	case CauseNoFrame:
		return "no frame for trigger"
	case CauseStopped:
		return "stopped"
	case CauseOverrun:
		return "line cannot keep up"
	}
	return fmt.Sprintf("cause(%d)", int(c))
}

// level is the electrical level for a logical state on a pin that may be active-low.
func level(active, activeLow bool) gpio.Level {
	return gpio.Level(active != activeLow)
}
