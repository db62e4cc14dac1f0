package daemon_test

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/internal/testlib"
	"github.com/adtrd/adtrd/model"
	"github.com/adtrd/adtrd/systemd"
)

// gatedEngine infers only while its gate is open: closing it is a hung inference.
type gatedEngine struct {
	slowEngine
	mu   sync.Mutex
	gate chan struct{}
}

func (g *gatedEngine) Invoke() error {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	<-gate
	return g.slowEngine.Invoke()
}

func (g *gatedEngine) set(open bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if open {
		close(g.gate)
	} else {
		g.gate = make(chan struct{})
	}
}

// The watchdog is fed while frames are decided, stops when inference hangs on
// purpose, and resumes when it moves again; over a real NOTIFY_SOCKET.
func TestWatchdogStopsWhenThePipelineStalls(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	var mu sync.Mutex
	var pings []time.Time
	go func() {
		buf := make([]byte, 512)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			if strings.Contains(string(buf[:n]), "WATCHDOG=1") {
				mu.Lock()
				pings = append(pings, time.Now())
				mu.Unlock()
			}
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(pings) }
	// A tick with no finished frame while one is in flight is a stall, so the interval
	// must outlast one frame by far: 5 ms of inference plus scoring took over 50 ms
	// under -race with both cores busy (CI), which read as a stall while frames flowed.
	const interval = 200 * time.Millisecond

	meta, err := model.Load(testlib.Demo("adtr.tflite.json"))
	if err != nil {
		t.Fatal(err)
	}
	eng := &gatedEngine{slowEngine: slowEngine{fakeEngine: newFake(meta), d: 5 * time.Millisecond}, gate: make(chan struct{})}
	close(eng.gate)
	src, err := capture.NewReplay(capture.ReplayOptions{Path: testlib.Demo("frames"), Loop: true, FPS: 50, Size: capture.Size{W: 224, H: 224}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	r := newRig(t, eng, meta, src, rigSet{Queue: 2}, 0)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	defer func() { cancel(); <-ran }() // the pipeline stops before the source closes
	go func() { r.p.Run(ctx); close(ran) }()
	var logs strings.Builder
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(b []byte) (int, error) { logMu.Lock(); defer logMu.Unlock(); return logs.Write(b) }), nil))
	go systemd.Supervise(ctx, systemd.NewNotifier(log), systemd.Monitor{Watchdog: interval, StatusEvery: time.Hour, Progress: r.p.Progress(), Status: func() string { return "" }}, log)

	time.Sleep(10 * interval)
	if n := count(); n < 5 {
		t.Fatalf("%d pings while frames flowed", n)
	}
	logMu.Lock()
	hungFrom := logs.Len()
	logMu.Unlock()
	eng.set(false) // inference hangs
	time.Sleep(3 * interval)
	stalledAt := count()
	time.Sleep(10 * interval)
	if n := count(); n != stalledAt {
		t.Fatalf("%d pings while inference hung", n-stalledAt)
	}
	eng.set(true)
	time.Sleep(10 * interval)
	if n := count(); n < stalledAt+5 {
		t.Fatalf("pings did not resume: %d after %d", n, stalledAt)
	}
	logMu.Lock()
	defer logMu.Unlock()
	// Only the hang is judged: the stall is logged once for it, then the resumption.
	hung := logs.String()[hungFrom:]
	stall := strings.Index(hung, "pipeline stalled")
	if stall < 0 || strings.Count(hung, "pipeline stalled") != 1 || !strings.Contains(hung[stall:], "watchdog pings resumed") {
		t.Fatalf("logs since the hang:\n%s", hung)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
