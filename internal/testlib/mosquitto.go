package testlib

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const mosquitto = "/usr/sbin/mosquitto"

// Mosquitto is a real mosquitto broker on a loopback port of the test's own, with persistence
// in the test's temporary directory, so that a restart keeps the subscribers'
// sessions and their queued messages (mosquitto saves them on SIGTERM).
type Mosquitto struct {
	t    testing.TB
	port int
	conf string
	out  SyncBuffer
	cmd  *exec.Cmd
	done chan struct{}
}

// NewMosquitto writes the configuration for port; start runs it.
func NewMosquitto(t testing.TB, port int) *Mosquitto {
	t.Helper()
	if _, err := os.Stat(mosquitto); err != nil {
		Missing(t, mosquitto+" missing: scripts/install-debs.sh installs it")
	}
	dir := t.TempDir()
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nlog_dest stderr\n", port, dir)
	if os.Geteuid() == 0 {
		conf += "user root\n" // else mosquitto drops to user mosquitto, who cannot write dir
	}
	b := &Mosquitto{t: t, port: port, conf: filepath.Join(dir, "mosquitto.conf")}
	if err := os.WriteFile(b.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if b.Running() {
			b.cmd.Process.Kill()
			<-b.done
		}
		if t.Failed() {
			t.Logf("mosquitto on port %d said:\n%s", b.port, b.out.String())
		}
	})
	return b
}

// StartMosquitto runs a broker on a free port.
func StartMosquitto(t testing.TB) *Mosquitto {
	t.Helper()
	b := NewMosquitto(t, FreePort(t))
	b.Start()
	return b
}

func (b *Mosquitto) URL() string  { return "tcp://" + b.Addr() }
func (b *Mosquitto) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) }

func (b *Mosquitto) Running() bool {
	if b.cmd == nil {
		return false
	}
	select {
	case <-b.done:
		return false
	default:
		return true
	}
}

// Start runs mosquitto and returns once it accepts connections.
func (b *Mosquitto) Start() {
	b.t.Helper()
	cmd := exec.Command(mosquitto, "-c", b.conf)
	cmd.Stdout, cmd.Stderr = &b.out, &b.out
	DiesWithTest(cmd)
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("mosquitto: %v", err)
	}
	b.cmd, b.done = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(b.done)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if c, err := net.Dial("tcp", b.Addr()); err == nil {
			c.Close()
			return
		}
		if !b.Running() || time.Now().After(deadline) {
			b.t.Fatalf("mosquitto did not listen on %s:\n%s", b.Addr(), b.out.String())
		}
	}
}

// Stop ends mosquitto as systemd would (SIGTERM: it saves its persistence first).
func (b *Mosquitto) Stop() {
	b.t.Helper()
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		b.t.Fatalf("mosquitto on %s did not stop on SIGTERM", b.Addr())
	}
}

// FreePort is a loopback port nothing listens on (just now).
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// SyncBuffer collects what a child process or a logger writes, safely across
// goroutines.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Lines are the lines written so far that contain substr.
func (s *SyncBuffer) Lines(substr string) []string {
	var out []string
	for _, l := range strings.Split(s.String(), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}
