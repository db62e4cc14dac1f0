package systemd

import (
	"context"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// WatchdogInterval is how often to ping: half of the unit's WatchdogSec, as
// sd_watchdog_enabled(3) advises; ok is false when no watchdog is set for us.
func WatchdogInterval() (interval time.Duration, ok bool) {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil || d <= 0 {
		return 0, false
	}
	return d / 2, true
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
