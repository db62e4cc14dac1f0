package systemd_test

import (
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/adtrd/adtrd/systemd"
)

func TestWatchdogInterval(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	tests := []struct {
		name      string
		usec      string // "" leaves WATCHDOG_USEC unset
		pid       string
		want      time.Duration
		malformed bool
	}{
		{"no watchdog", "", "", 0, false},                        // not under a unit with WatchdogSec
		{"10 s for us", "10000000", pid, 5 * time.Second, false}, // half of WatchdogSec
		{"10 s for another process", "10000000", "1", 0, false},  // WATCHDOG_PID names someone else
		{"not a number", "ten seconds", pid, 0, true},            // was silently "no watchdog"
		{"negative", "-5", pid, 0, true},                         // as malformed as a word
		{"pid not a number", "10000000", "me", 0, true},          // the other half of the contract
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			os.Unsetenv("WATCHDOG_USEC")
			os.Unsetenv("WATCHDOG_PID")
			if tc.usec != "" {
				t.Setenv("WATCHDOG_USEC", tc.usec)
			}
			if tc.pid != "" {
				t.Setenv("WATCHDOG_PID", tc.pid)
			}
			got, err := systemd.WatchdogInterval()
			if tc.malformed != errors.Is(err, systemd.ErrWatchdog) || got != tc.want {
				t.Fatalf("got %v, %v; want %v, malformed %v", got, err, tc.want, tc.malformed)
			}
		})
	}
}
