package systemd_test

import (
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adtrd/adtrd/systemd"
)

// listen is a real NOTIFY_SOCKET, as systemd gives a Type=notify service.
func listen(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestNotifyProtocol(t *testing.T) {
	c := listen(t)
	n := systemd.NewNotifier(slog.New(slog.NewTextHandler(io.Discard, nil)))
	n.Reloading()
	// Type=notify-reload: RELOADING=1 must carry MONOTONIC_USEC, or `systemctl reload` hangs.
	got := read(t, c)
	if !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") || len(got) < len("RELOADING=1\nMONOTONIC_USEC=1") {
		t.Fatalf("reloading: %q", got)
	}
	for _, tc := range []struct {
		send func()
		want string
	}{
		{n.Ready, "READY=1"},
		{func() { n.Status("generation 2, model e43d305198fd") }, "STATUS=generation 2, model e43d305198fd"},
		{n.Watchdog, "WATCHDOG=1"},
		{n.Stopping, "STOPPING=1"},
	} {
		tc.send()
		if got := read(t, c); got != tc.want {
			t.Fatalf("got %q, want %q", got, tc.want)
		}
	}
}

// A socket that is gone (systemd restarted under us) is logged once, not per call.
func TestDeadSocketIsLoggedOnce(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone.sock"))
	var logs strings.Builder
	n := systemd.NewNotifier(slog.New(slog.NewTextHandler(&logs, nil)))
	n.Ready()
	n.Status("x")
	n.Watchdog()
	if c := strings.Count(logs.String(), "sd_notify failed"); c != 1 {
		t.Fatalf("%d warnings:\n%s", c, logs.String())
	}
}

// After STOPPING=1 nothing else reaches systemd: a reload or a watchdog tick that
// finishes during shutdown must not say READY=1 again.
func TestNothingAfterStopping(t *testing.T) {
	c := listen(t)
	n := systemd.NewNotifier(slog.New(slog.NewTextHandler(io.Discard, nil)))
	n.Stopping()
	if got := read(t, c); got != "STOPPING=1" {
		t.Fatalf("got %q", got)
	}
	n.Ready()
	n.Watchdog()
	n.Status("late")
	n.Stopping()
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 4096)
	if k, err := c.Read(buf); err == nil {
		t.Fatalf("sent after STOPPING=1: %q", buf[:k])
	}
}
