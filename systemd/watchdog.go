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

// Supervise pings the watchdog every interval while progress() says the daemon is
// making progress, and sends status() as STATUS= every statusEvery. When progress
// fails the pings stop (systemd then kills and restarts the service) and that is
// logged once per stall. interval 0: no watchdog, status only.
func Supervise(ctx context.Context, n *Notifier, interval, statusEvery time.Duration, progress func() bool, status func() string, log *slog.Logger) {
	var ping <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		ping = t.C
	}
	st := time.NewTicker(statusEvery)
	defer st.Stop()
	stalled := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-ping:
			if progress() {
				if stalled {
					log.Info("pipeline moving again: watchdog pings resumed")
				}
				stalled = false
				n.Watchdog()
				continue
			}
			if !stalled {
				log.Error("pipeline stalled: a frame is stuck in inference or scoring; watchdog pings stopped")
			}
			stalled = true
		case <-st.C:
			n.Status(status())
		}
	}
}
