package systemd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// ErrWatchdog reports a WATCHDOG_USEC (or WATCHDOG_PID) that is not a number: the
// unit asked for a watchdog, and treating it as "none" would leave a hung daemon alive.
var ErrWatchdog = errors.New("systemd: malformed watchdog environment")

// WatchdogInterval is how often to ping: half of the unit's WatchdogSec, as
// sd_watchdog_enabled(3) advises; 0 when no watchdog is set for this process.
func WatchdogInterval() (time.Duration, error) {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0, fmt.Errorf("%w: WATCHDOG_USEC=%q WATCHDOG_PID=%q: %v", ErrWatchdog, os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), err)
	}
	if d <= 0 {
		return 0, nil
	}
	return d / 2, nil
}

// Monitor is the daemon's one progress monitor.
type Monitor struct {
	Watchdog    time.Duration // ping interval (WatchdogInterval); 0: no watchdog
	Check       time.Duration // how often progress is checked when that is sooner than Watchdog
	StatusEvery time.Duration // STATUS= period
	Progress    func() bool   // frames moving, or idle by design
	Status      func() string
	Health      func(bool) // told of every change (the heartbeat and ready outputs); may be nil
}

// Supervise checks m.Progress every min(Watchdog, Check) until ctx ends: while it
// holds, the watchdog is pinged; when it fails the pings stop (systemd then kills and
// restarts the service), m.Health(false) is called and the stall is logged once; and
// m.Status() goes out as STATUS= every StatusEvery. It returns when ctx ends and
// sends nothing after that, so the caller can join it before STOPPING=1.
func Supervise(ctx context.Context, n *Notifier, m Monitor, log *slog.Logger) {
	every := m.Check
	if m.Watchdog > 0 && (every <= 0 || m.Watchdog < every) {
		every = m.Watchdog
	}
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	st := time.NewTicker(m.StatusEvery)
	defer st.Stop()
	stalled := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			if ctx.Err() != nil {
				return
			}
			if m.Progress() {
				if stalled {
					log.Info("pipeline moving again: watchdog pings resumed")
					if m.Health != nil {
						m.Health(true)
					}
				}
				stalled = false
				if m.Watchdog > 0 {
					n.Watchdog()
				}
				continue
			}
			if !stalled {
				log.Error("pipeline stalled: a frame is stuck in inference or scoring; watchdog pings stopped")
				if m.Health != nil {
					m.Health(false)
				}
			}
			stalled = true
		case <-st.C:
			if ctx.Err() != nil {
				return
			}
			n.Status(m.Status())
		}
	}
}
