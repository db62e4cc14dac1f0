package app

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/gpio"
	"github.com/adtrd/adtrd/gpio/hostgpio"
)

// Line is the output side built from a config: the part tracker on its backend's
// pins. Close leaves every output inactive, then releases the lines.
type Line struct {
	*gpio.Tracker
	Sim     *gpio.Sim // the simulated backend's board; nil on real pins
	closers []func() error
	closed  bool
}

// OpenLine opens the backend, finds every wired pin and builds the tracker (outputs
// inactive, inputs configured); on any failure what was opened is released.
func OpenLine(cfg config.Config, log *slog.Logger) (_ *Line, err error) {
	l := &Line{}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
		}
	}()
	o, in := cfg.Output, cfg.Input
	opt := gpio.Options{
		Delay: time.Duration(o.Reject.Delay), DelayCounts: o.Reject.DelayCounts, Pulse: time.Duration(o.Reject.Pulse),
		Debounce: time.Duration(in.Trigger.Debounce), ConfirmWindow: time.Duration(in.Confirm.Window),
		HeartbeatPeriod: time.Duration(o.Heartbeat.Period), InFlight: cfg.Tracking.InFlight, Spin: time.Duration(cfg.Tracking.Spin),
		FailSafe: daemon.FailSafe(cfg.FailSafe), Log: log,
	}
	switch o.Backend {
	case config.BackendSim:
		sim, err := gpio.NewSim(o.SimCSV, log)
		if err != nil {
			return nil, err
		}
		l.Sim = sim
		l.closers = append(l.closers, sim.Close)
		for _, r := range cfg.Roles() {
			if r.Pin.Wired() && !r.Input {
				log.Info("sim backend: the line named here is not used; the output is simulated", "key", r.Key)
			}
		}
		opt.Reject = gpio.Output{Name: "reject", Pin: sim.Pin("reject")}
		opt.Alarm = gpio.Output{Name: "alarm", Pin: sim.Pin("alarm")}
		opt.Ready = gpio.Output{Name: "ready", Pin: sim.Pin("ready")}
		if o.Heartbeat.Period > 0 {
			opt.Heartbeat = gpio.Output{Name: "heartbeat", Pin: sim.Pin("heartbeat")}
		}
	case config.BackendGPIOChip:
		board, err := hostgpio.Open(log)
		if err != nil {
			return nil, err
		}
		l.closers = append(l.closers, board.Close)
		for _, r := range cfg.Roles() {
			if !r.Pin.Wired() {
				continue
			}
			out, in, err := slot(&opt, r.Key)
			if err != nil {
				return nil, err
			}
			pin, err := board.Line(r.Key, lineSpec(r.Pin))
			if err != nil {
				return nil, err
			}
			if out != nil {
				*out = gpio.Output{Name: r.Key, Pin: pin, ActiveLow: r.Pin.ActiveLow}
			} else {
				*in = gpio.Input{Name: r.Key, Pin: pin, ActiveLow: r.Pin.ActiveLow, Pull: periphPull(r.Pull)}
			}
		}
	default:
		return nil, fmt.Errorf("daemon: output backend %v not supported", o.Backend)
	}
	tr, err := gpio.New(opt)
	if err != nil {
		return nil, err
	}
	l.Tracker = tr
	return l, nil
}

// ErrRole reports a config role the tracker has no place for (a role added to
// config.Roles but not here): an error, never a nil pointer.
var ErrRole = errors.New("daemon: no tracker slot for role")

// slot is where role key's pin goes in the tracker's options: exactly one of out, in.
// TestEveryRoleHasASlot keeps it and config.Roles in step.
func slot(opt *gpio.Options, key string) (out *gpio.Output, in *gpio.Input, err error) {
	switch key {
	case "output.reject":
		return &opt.Reject, nil, nil
	case "output.alarm":
		return &opt.Alarm, nil, nil
	case "output.ready":
		return &opt.Ready, nil, nil
	case "output.heartbeat":
		return &opt.Heartbeat, nil, nil
	case "input.trigger":
		return nil, &opt.Trigger, nil
	case "input.encoder":
		return nil, &opt.Encoder, nil
	case "input.confirm":
		return nil, &opt.Confirm, nil
	case "input.inhibit":
		return nil, &opt.Inhibit, nil
	case "input.alarm_reset":
		return nil, &opt.AlarmReset, nil
	}
	return nil, nil, fmt.Errorf("%w %s", ErrRole, key)
}

// lineSpec is the backend's name for the line a config pin names.
func lineSpec(p config.Pin) hostgpio.Spec {
	spec := hostgpio.Spec{Line: p.Line, Chip: p.Chip, Offset: -1}
	if p.Offset != nil {
		spec.Offset = *p.Offset
	}
	return spec
}

func periphPull(p config.Pull) pgpio.Pull {
	switch p {
	case config.PullUp:
		return pgpio.PullUp
	case config.PullDown:
		return pgpio.PullDown
	case config.PullFloat:
		return pgpio.Float
	}
	return pgpio.PullNoChange
}

// Close stops the tracker (every output inactive), then releases the backend; safe
// twice and after a half-done OpenLine.
func (l *Line) Close() error {
	if l.closed {
		return nil
	}
	l.closed = true
	var errs []error
	if l.Tracker != nil {
		errs = append(errs, l.Tracker.Close())
	}
	for i := len(l.closers) - 1; i >= 0; i-- {
		errs = append(errs, l.closers[i]())
	}
	return errors.Join(errs...)
}

// CheckLines finds every wired line of a gpiochip config on this machine's chips,
// without driving any: `adtrd check` runs it. Other backends have nothing to find.
func CheckLines(cfg config.Config, log *slog.Logger) error {
	if cfg.Output.Backend != config.BackendGPIOChip {
		return nil
	}
	board, err := hostgpio.Open(log)
	if err != nil {
		return err
	}
	defer board.Close()
	var errs []error
	for _, r := range cfg.Roles() {
		if !r.Pin.Wired() {
			continue
		}
		if _, _, err := hostgpio.Find(board.Chips(), lineSpec(r.Pin)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.Key, err))
		}
	}
	return errors.Join(errs...)
}
