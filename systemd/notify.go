// Package systemd tells systemd the truth about adtrd: READY, RELOADING, STOPPING,
// STATUS and watchdog pings over $NOTIFY_SOCKET (go-systemd's sd_notify); the unit
// file is adtrd.service beside this file.
package systemd

import (
	"log/slog"
	"strings"
	"sync"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier sends states to systemd. Without $NOTIFY_SOCKET (not started by systemd)
// every call does nothing.
type Notifier struct {
	log     *slog.Logger
	mu      sync.Mutex
	warn    bool
	stopped bool // after STOPPING=1 nothing else is sent
}

// NewNotifier makes a notifier that logs a failed send once.
func NewNotifier(log *slog.Logger) *Notifier { return &Notifier{log: log} }

func (n *Notifier) send(state string) {
	// One lock around the check and the send: nothing can slip out after STOPPING=1.
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return
	}
	if strings.HasPrefix(state, daemon.SdNotifyStopping) {
		n.stopped = true
	}
	if _, err := daemon.SdNotify(false, state); err != nil && !n.warn {
		n.warn = true
		n.log.Warn("sd_notify failed", "state", state, "err", err)
	}
}

// Ready: start-up or a reload is complete.
func (n *Notifier) Ready() { n.send(daemon.SdNotifyReady) }

// ReadyStatus is Ready and Status in one message.
func (n *Notifier) ReadyStatus(s string) { n.send(daemon.SdNotifyReady + "\nSTATUS=" + s) }

// Reloading: a reload starts; systemd's Type=notify-reload needs MONOTONIC_USEC with it.
func (n *Notifier) Reloading() {
	n.send(daemon.SdNotifyReloading + "\n" + daemon.SdNotifyMonotonicUsec())
}

// Stopping: the daemon is shutting down.
// Every later call sends nothing: a reload or a status line finishing after it must
// not tell systemd the daemon is ready again.
func (n *Notifier) Stopping() { n.send(daemon.SdNotifyStopping) }

// Status is the one-line status `systemctl status` shows.
func (n *Notifier) Status(s string) { n.send("STATUS=" + s) }

// Watchdog is a keep-alive ping.
func (n *Notifier) Watchdog() { n.send(daemon.SdNotifyWatchdog) }
