package mqtt

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/internal/testlib"
)

const mosquitto = "/usr/sbin/mosquitto"

// broker is a real mosquitto on a loopback port of the test's own, with persistence
// in the test's temporary directory, so that a restart keeps the subscribers'
// sessions and their queued messages (mosquitto saves them on SIGTERM).
type broker struct {
	t    testing.TB
	port int
	conf string
	out  syncBuffer
	cmd  *exec.Cmd
	done chan struct{}
}

// newBroker writes the configuration for port; start runs it.
func newBroker(t testing.TB, port int) *broker {
	t.Helper()
	if _, err := os.Stat(mosquitto); err != nil {
		testlib.Missing(t, mosquitto+" missing: scripts/install-debs.sh installs it")
	}
	dir := t.TempDir()
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nlog_dest stderr\n", port, dir)
	if os.Geteuid() == 0 {
		conf += "user root\n" // else mosquitto drops to user mosquitto, who cannot write dir
	}
	b := &broker{t: t, port: port, conf: filepath.Join(dir, "mosquitto.conf")}
	if err := os.WriteFile(b.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if b.running() {
			b.cmd.Process.Kill()
			<-b.done
		}
		if t.Failed() {
			t.Logf("mosquitto on port %d said:\n%s", b.port, b.out.String())
		}
	})
	return b
}

// startBroker runs a broker on a free port.
func startBroker(t testing.TB) *broker {
	t.Helper()
	b := newBroker(t, freePort(t))
	b.start()
	return b
}

func (b *broker) url() string  { return "tcp://" + b.addr() }
func (b *broker) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) }

func (b *broker) running() bool {
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

// start runs mosquitto and returns once it accepts connections.
func (b *broker) start() {
	b.t.Helper()
	cmd := exec.Command(mosquitto, "-c", b.conf)
	cmd.Stdout, cmd.Stderr = &b.out, &b.out
	testlib.DiesWithTest(cmd)
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("mosquitto: %v", err)
	}
	b.cmd, b.done = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(b.done)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if c, err := net.Dial("tcp", b.addr()); err == nil {
			c.Close()
			return
		}
		if !b.running() || time.Now().After(deadline) {
			b.t.Fatalf("mosquitto did not listen on %s:\n%s", b.addr(), b.out.String())
		}
	}
}

// stop ends mosquitto as systemd would (SIGTERM: it saves its persistence first).
func (b *broker) stop() {
	b.t.Helper()
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		b.t.Fatalf("mosquitto on %s did not stop on SIGTERM", b.addr())
	}
}

// freePort is a loopback port nothing listens on (just now).
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// received is one message a test subscriber got.
type received struct {
	topic    string
	payload  string
	retained bool
}

// subscriber is a paho client of the test's. With a persistent session (clean false)
// the broker queues its messages while it, or the broker, is away.
type subscriber struct {
	c  paho.Client
	ch chan received
}

func subscribe(t testing.TB, url, id string, clean bool, topics ...string) *subscriber {
	t.Helper()
	s := &subscriber{ch: make(chan received, 10000)}
	o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetProtocolVersion(4).
		SetCleanSession(clean).SetAutoReconnect(true).SetMaxReconnectInterval(200 * time.Millisecond).
		SetConnectTimeout(2 * time.Second).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			s.ch <- received{m.Topic(), string(m.Payload()), m.Retained()}
		})
	s.c = paho.NewClient(o)
	if tok := s.c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("test subscriber %s: connect: %v", id, tok.Error())
	}
	filters := map[string]byte{}
	for _, tp := range topics {
		filters[tp] = 1
	}
	if tok := s.c.SubscribeMultiple(filters, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("test subscriber %s: subscribe: %v", id, tok.Error())
	}
	t.Cleanup(s.close)
	return s
}

func (s *subscriber) close() { s.c.Disconnect(100) }

// next is the next message, or fails the test after timeout.
func (s *subscriber) next(t testing.TB, timeout time.Duration) received {
	t.Helper()
	select {
	case m := <-s.ch:
		return m
	case <-time.After(timeout):
		t.Fatalf("no message within %v", timeout)
		return received{}
	}
}

// retained is the retained message a new subscriber to topic gets at once.
func retained(t testing.TB, url, topic string) string {
	t.Helper()
	s := subscribe(t, url, fmt.Sprintf("retained-%d", time.Now().UnixNano()%1e9), true, topic)
	defer s.close()
	m := s.next(t, 5*time.Second)
	if !m.retained {
		t.Fatalf("%s: first message %q is not the retained one", topic, m.payload)
	}
	return m.payload
}

// proxy forwards TCP to a broker until cut, which drops every connection without
// an MQTT DISCONNECT, as a pulled cable or a dead switch would.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	x := &proxy{ln: ln}
	x.wg.Add(1)
	go func() {
		defer x.wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			x.mu.Lock()
			x.conns = append(x.conns, in, out)
			x.mu.Unlock()
			x.wg.Add(2)
			go func() { defer x.wg.Done(); io.Copy(out, in); out.Close() }()
			go func() { defer x.wg.Done(); io.Copy(in, out); in.Close() }()
		}
	}()
	t.Cleanup(func() { x.cut(); x.wg.Wait() })
	return x
}

func (x *proxy) url() string { return "tcp://" + x.ln.Addr().String() }

// cut stops accepting and closes every connection.
func (x *proxy) cut() {
	x.ln.Close()
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, c := range x.conns {
		c.Close()
	}
}

// newPublisher makes a publisher for url whose reconnection backoff is capped at
// 300 ms (10 s in production), so that tests see a broker come back quickly; it is
// closed when the test ends.
func newPublisher(t testing.TB, url string, bus *daemon.Bus, edit func(*Options)) *Publisher {
	t.Helper()
	opt := Options{
		Config: config.MQTT{Broker: url, ClientID: "adtrd-test", Topic: "plant/line3/adtrd", Decisions: config.DecisionsRejects, Buffer: 1000},
		Bus:    bus, Host: "line3-pc",
	}
	if edit != nil {
		edit(&opt)
	}
	p, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	p.backoffMax = 300 * time.Millisecond
	t.Cleanup(func() { p.Close() })
	return p
}

// waitFor polls cond until it holds, or fails the test after timeout.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// logs keeps what the publisher logs, to count its lines.
type logs struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logs) WithGroup(string) slog.Handler            { return l }
func (l *logs) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}

// lines are the messages logged, in order, each with its attributes' keys.
func (l *logs) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.recs {
		line := r.Message
		r.Attrs(func(a slog.Attr) bool { line += " " + a.Key; return true })
		out = append(out, line)
	}
	return out
}
