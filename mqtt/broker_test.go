package mqtt

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/events"
)

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

func (x *proxy) URL() string { return "tcp://" + x.ln.Addr().String() }

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
func newPublisher(t testing.TB, url string, bus *events.Bus, edit func(*Options)) *Publisher {
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
