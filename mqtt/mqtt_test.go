package mqtt

import (
	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/internal/testlib"

	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/adtrd/adtrd/config"
)

const (
	prefix = "plant/line3/adtrd"
	sha    = "3f2a9c0d5e8b7a6f1c4d3e2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f"
)

func decision(seq uint64, d events.Decision) events.Event {
	return events.Event{Kind: events.EventDecision, Time: time.Now(), Record: events.Record{
		Seq: seq, Part: seq, Gen: 1, Model: sha, Name: fmt.Sprintf("/var/lib/adtrd/frames/%03d.png", seq),
		Score: 10 + float64(seq)/3, Threshold: 12.5, Decision: d,
	}}
}

// seqs reads the seq of each decision message, in arrival order.
func seqs(t *testing.T, ms []received) []uint64 {
	t.Helper()
	var out []uint64
	for _, m := range ms {
		var d struct{ Seq uint64 }
		if err := json.Unmarshal([]byte(m.payload), &d); err != nil {
			t.Fatalf("%s: %q: %v", m.topic, m.payload, err)
		}
		out = append(out, d.Seq)
	}
	return out
}

// TestBrokerRestartLosesNothing runs 200 decisions, every 5th a reject, and stops the
// broker after the first 100: what was published while it was down (and whatever
// was in flight when it went) must reach a subscriber with a persistent session once
// it is back.
func TestBrokerRestartLosesNothing(t *testing.T) {
	for _, tc := range []struct {
		name      string
		decisions config.Decisions
		want      func(seq uint64) bool
	}{
		{"rejects", config.DecisionsRejects, func(seq uint64) bool { return seq%5 == 0 }}, // the 40 rejects, no pass
		{"all", config.DecisionsAll, func(uint64) bool { return true }},                   // all 200
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testlib.StartMosquitto(t)
			sub := subscribe(t, b.URL(), "line3-dashboard", false, prefix+"/decision")
			bus := events.NewBus()
			var log logs
			p := newPublisher(t, b.URL(), bus, func(o *Options) { o.Config.Decisions = tc.decisions; o.Log = slog.New(&log) })
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the publisher to connect", 5*time.Second, func() bool { return p.Stats().Connected })
			run := func(from, to uint64) {
				for seq := from; seq <= to; seq++ {
					d := events.Pass
					if seq%5 == 0 {
						d = events.Reject
					}
					bus.Publish(decision(seq, d))
				}
			}
			run(1, 100)
			b.Stop()
			run(101, 200)
			waitFor(t, "the publisher to see the broker gone", 5*time.Second, func() bool { return !p.Stats().Connected })
			b.Start()

			var want []uint64
			for seq := uint64(1); seq <= 200; seq++ {
				if tc.want(seq) {
					want = append(want, seq)
				}
			}
			got := map[uint64]int{}
			var all []received
			timeout := time.After(15 * time.Second)
		collect:
			for len(got) < len(want) {
				select {
				case m := <-sub.ch:
					all = append(all, m)
					got[seqs(t, []received{m})[0]]++
				case <-timeout:
					break collect // the comparison below says what is missing
				}
			}
			if len(got) == len(want) {
				waitFor(t, "the buffer to empty", 5*time.Second, func() bool { return p.Stats().Queued == 0 })
			}
			for len(sub.ch) > 0 { // what arrived with the last acknowledgement
				m := <-sub.ch
				all = append(all, m)
				got[seqs(t, []received{m})[0]]++
			}
			var unique, dups []uint64
			for s, n := range got {
				unique = append(unique, s)
				if n > 1 {
					dups = append(dups, s)
				}
			}
			slices.Sort(unique)
			if !slices.Equal(unique, want) {
				t.Errorf("decisions received (by seq) %v\nwant %v", unique, want)
			}
			t.Logf("%d messages, %d seqs, duplicated (QoS 1 allows it): %v", len(all), len(unique), dups)
			s := p.Stats()
			if s.Dropped != 0 || s.BusDropped != 0 || s.Reconnects != 1 {
				t.Errorf("stats %+v: want nothing dropped and a reconnection", s)
			}
			logged := []string{ // however many attempts failed while it was down
				"mqtt: connected broker topic client_id",
				"mqtt: broker lost: buffering, the oldest dropped when full err buffer",
				"mqtt: broker back broker outage dropped queued",
			}
			if got := log.lines(); !slices.Equal(got, logged) {
				t.Errorf("logged\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(logged, "\n"))
			}
		})
	}
}

// TestAvailability: "online" is retained once connected; "offline" replaces it at
// Close, and, as the last will, when the connection drops without a DISCONNECT.
func TestAvailability(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(t *testing.T, p *Publisher, x *proxy) // how the publisher goes away
	}{
		{"close", func(t *testing.T, p *Publisher, _ *proxy) {
			if err := p.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}},
		{"connection cut: the will", func(_ *testing.T, _ *Publisher, x *proxy) { x.cut() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testlib.StartMosquitto(t)
			x := newProxy(t, b.Addr())
			p := newPublisher(t, x.URL(), events.NewBus(), nil)
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the publisher to connect", 5*time.Second, func() bool { return p.Stats().Connected })
			if got := retained(t, b.URL(), prefix+"/availability"); got != "online" {
				t.Fatalf("retained availability %q once connected, want online", got)
			}
			tc.end(t, p, x)
			waitFor(t, "retained offline", 5*time.Second, func() bool {
				return retained(t, b.URL(), prefix+"/availability") == "offline"
			})
			waitFor(t, "the publisher to see it", 5*time.Second, func() bool { return !p.Stats().Connected })
		})
	}
}

// TestBufferDropsOldest: with no broker and a buffer of 10, 25 rejects leave the 10
// newest, which reach the broker in order once it starts.
func TestBufferDropsOldest(t *testing.T) {
	b := testlib.NewMosquitto(t, testlib.FreePort(t))
	// A persistent session for the subscriber, made while the broker runs once, so
	// that it gets what the publisher sends as soon as the broker is back.
	b.Start()
	subscribe(t, b.URL(), "line3-dashboard", false, prefix+"/decision").close()
	b.Stop()

	bus := events.NewBus()
	var log logs
	p := newPublisher(t, b.URL(), bus, func(o *Options) { o.Config.Buffer = 10; o.Log = slog.New(&log) })
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 25; seq++ {
		e := decision(seq, events.Reject)
		e.Record.Gen = 0 // no generation: no state message to share the buffer
		bus.Publish(e)
	}
	waitFor(t, "25 rejects in a buffer of 10", 5*time.Second, func() bool { return p.Stats().Dropped+uint64(p.Stats().Queued) == 25 })
	waitFor(t, "3 failed attempts", 5*time.Second, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.failures >= 3 })
	s := p.Stats()
	if s.Dropped != 15 || s.Queued != 10 || s.Connected {
		t.Errorf("stats %+v: want Dropped 15, Queued 10, not connected", s)
	}
	if want := "mqtt: broker " + b.URL() + ": connection refused"; s.LastError != want {
		t.Errorf("LastError %q, want %q", s.LastError, want)
	}

	b.Start()
	sub := subscribe(t, b.URL(), "line3-dashboard", false, prefix+"/decision")
	var got []uint64
	for len(got) < 10 {
		s := seqs(t, []received{sub.next(t, 10*time.Second)})[0]
		if !slices.Contains(got, s) { // a duplicate (QoS 1) is not out of order
			got = append(got, s)
		}
	}
	if want := []uint64{16, 17, 18, 19, 20, 21, 22, 23, 24, 25}; !slices.Equal(got, want) {
		t.Errorf("received %v, want %v", got, want)
	}
	waitFor(t, "the buffer to empty", 5*time.Second, func() bool { return p.Stats().Queued == 0 })
	if s := p.Stats(); s.Published < 10 || s.Dropped != 15 {
		t.Errorf("stats %+v: want 10 published, 15 dropped", s)
	}
	// Failed attempts, one outage: a line when it starts, one when the buffer
	// overflows (either first: the consumer races the first attempt), one when it
	// ends, with its length.
	want := []string{
		"mqtt: broker unreachable: buffering, the oldest dropped when full err buffer",
		"mqtt: buffer full: dropping the oldest messages broker buffer",
		"mqtt: broker back broker outage dropped queued",
	}
	if got := log.lines(); len(got) != 3 || got[2] != want[2] || !sameSet(got, want) {
		t.Errorf("logged\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Every message of a topic has exactly these fields.
var fields = map[string][]string{
	prefix + "/decision": {"time", "host", "seq", "part", "frame", "score", "threshold", "decision", "reason", "generation", "model", "err"},
	prefix + "/fault":    {"time", "host", "kind", "part", "cause", "err", "generation"},
	prefix + "/state":    {"time", "host", "change", "camera", "alarm", "generation"},
}

// TestMessages checks the fault, state and decision payloads field by field.
func TestMessages(t *testing.T) {
	b := testlib.StartMosquitto(t)
	sub := subscribe(t, b.URL(), "line3-dashboard", false, prefix+"/decision", prefix+"/fault", prefix+"/state")
	bus := events.NewBus()
	var alarm atomic.Bool
	p := newPublisher(t, b.URL(), bus, func(o *Options) { o.Alarm = alarm.Load })
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 3, 4, 5, 6, 7, 891011121, time.FixedZone("CET", 3600))
	const atUTC = "2025-03-04T04:06:07.891011121Z"
	type msg struct {
		topic string
		want  map[string]any // these fields; the others must be there too
	}
	ev := func(e events.Event) func() { return func() { e.Time = at; bus.Publish(e) } }
	for _, tc := range []struct {
		name string
		do   func()
		want []msg
	}{
		{"connect", func() {}, []msg{{"state", map[string]any{"change": "connect", "camera": "up", "alarm": false, "generation": 0.}}}},
		{"reject", ev(events.Event{Kind: events.EventDecision, Record: events.Record{Seq: 41, Part: 40, Gen: 3, Model: sha,
			Name: "/var/lib/adtrd/frames/041_crack.png", Score: 22.523316, Threshold: 10.07083049028124, Decision: events.Reject}}),
			[]msg{
				// the first decision tells the generation
				{"state", map[string]any{"time": atUTC, "change": "generation", "generation": 3.}},
				{"decision", map[string]any{"time": atUTC, "host": "line3-pc", "seq": 41., "part": 40., "frame": "041_crack.png",
					"score": 22.5233, "threshold": 10.0708, "decision": "reject", "reason": "score", "generation": 3., "model": sha, "err": ""}},
			}},
		{"pass: not published under rejects", ev(events.Event{Kind: events.EventDecision, Record: events.Record{Seq: 42, Gen: 3, Decision: events.Pass}}), nil},
		{"fail-safe alarm decision", ev(events.Event{Kind: events.EventDecision, Record: events.Record{Seq: 43, Part: 42, Gen: 3, Model: sha,
			Name: "043.png", Score: math.NaN(), Decision: events.Alarm, Reason: events.InferFailure, Err: errors.New("invoke: \"tensor\"\tfailed")}}),
			[]msg{{"decision", map[string]any{"decision": "alarm", "reason": "fail-safe: inference error", "score": nil, "err": "invoke: \"tensor\"\tfailed"}}}},
		{"fail-safe part", ev(events.Event{Kind: events.EventFailSafe, Part: 7, Cause: "frame dropped"}),
			[]msg{{"fault", map[string]any{"time": atUTC, "host": "line3-pc", "kind": "fail-safe", "part": 7., "cause": "frame dropped", "err": "", "generation": 3.}}}},
		{"camera lost", ev(events.Event{Kind: events.EventSourceLost, Err: "v4l2: /dev/video0: no such device"}),
			[]msg{
				{"fault", map[string]any{"kind": "camera lost", "part": 0., "cause": "", "err": "v4l2: /dev/video0: no such device"}},
				{"state", map[string]any{"change": "camera", "camera": "lost", "alarm": false}},
			}},
		{"alarm on", func() { alarm.Store(true) }, []msg{{"state", map[string]any{"change": "alarm", "camera": "lost", "alarm": true}}}},
		{"camera back", ev(events.Event{Kind: events.EventSourceBack}), []msg{{"state", map[string]any{"time": atUTC, "change": "camera", "camera": "up", "alarm": true}}}},
		{"alarm reset", func() { alarm.Store(false) }, []msg{{"state", map[string]any{"change": "alarm", "alarm": false}}}},
		{"reload failed", ev(events.Event{Kind: events.EventReload, Gen: 3, Err: "model: models/x.tflite: no such file"}),
			[]msg{{"fault", map[string]any{"kind": "reload failed", "err": "model: models/x.tflite: no such file", "generation": 3.}}}},
		{"reload applied", ev(events.Event{Kind: events.EventReload, Gen: 4, Model: sha, Threshold: 11}),
			[]msg{{"state", map[string]any{"time": atUTC, "change": "generation", "generation": 4.}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.do()
			for _, w := range tc.want {
				m := sub.next(t, 5*time.Second)
				if m.topic != prefix+"/"+w.topic {
					t.Fatalf("got %s %s, want a message on %s", m.topic, m.payload, w.topic)
				}
				var got map[string]any
				if err := json.Unmarshal([]byte(m.payload), &got); err != nil {
					t.Fatalf("%s: %q: %v", m.topic, m.payload, err)
				}
				keys := make([]string, 0, len(got))
				for k := range got {
					keys = append(keys, k)
				}
				if want := fields[m.topic]; !sameSet(keys, want) {
					t.Errorf("%s fields %v, want %v", m.topic, keys, want)
				}
				for k, v := range w.want {
					if !reflect.DeepEqual(got[k], v) {
						t.Errorf("%s %s = %#v, want %#v (%s)", m.topic, k, got[k], v, m.payload)
					}
				}
				if _, err := time.Parse(time.RFC3339Nano, got["time"].(string)); err != nil || !strings.HasSuffix(got["time"].(string), "Z") {
					t.Errorf("time %q: want RFC 3339 in UTC (%v)", got["time"], err)
				}
			}
			// A row that wants nothing is checked by the next row's first message.
		})
	}
	select {
	case m := <-sub.ch:
		t.Errorf("unexpected %s %s", m.topic, m.payload)
	default:
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte("a-long-enough-password\n"), 0o600)
	loose := filepath.Join(dir, "loose")
	os.WriteFile(loose, []byte("a-long-enough-password\n"), 0o644)
	os.Chmod(loose, 0o644)
	missing := filepath.Join(dir, "missing")
	base := config.MQTT{Broker: "tcp://127.0.0.1:1883", ClientID: "adtrd", Topic: "adtrd", Buffer: 10, Username: "line3"}
	for _, tc := range []struct {
		name string
		edit func(*Options)
		want string // in the error; "": none
		is   error
	}{
		{"password file", func(o *Options) { o.Config.PasswordFile = good }, "", nil},
		{"missing password file", func(o *Options) { o.Config.PasswordFile = missing }, "mqtt: password file: " + missing + ": no such file or directory", syscall.ENOENT},
		{"password readable by others", func(o *Options) { o.Config.PasswordFile = loose }, "mqtt: password file: " + loose, config.ErrSecretReadable},
		{"password without username", func(o *Options) { o.Config.PasswordFile, o.Config.Username = good, "" }, "without a username", nil},
		{"no broker: publishing off", func(o *Options) { o.Config.Broker = "" }, "mqtt: no broker", nil},
		{"no bus", func(o *Options) { o.Bus = nil }, "mqtt: no event bus", nil},
		{"no buffer", func(o *Options) { o.Config.Buffer = 0 }, "mqtt: buffer 0", nil},
		{"host from the system", func(o *Options) { o.Host = "" }, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt := Options{Config: base, Bus: events.NewBus(), Host: "line3-pc"}
			tc.edit(&opt)
			p, err := New(opt)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.want == "":
				if p.host == "" {
					t.Error("no host name")
				}
				if err := p.Close(); err != nil { // before Start
					t.Errorf("Close before Start: %v", err)
				}
				if err := p.Start(); err == nil {
					t.Error("Start after Close: no error")
				}
			case err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n"):
				t.Fatalf("New: error %v, want one line with %q", err, tc.want)
			case tc.is != nil && !errors.Is(err, tc.is):
				t.Errorf("New: error %v is not %v", err, tc.is)
			}
		})
	}
}

// TestClose: Close twice, Close after Start with no broker, and no goroutine left
// behind, connected or not.
func TestClose(t *testing.T) {
	b := testlib.StartMosquitto(t)
	for _, tc := range []struct {
		name      string
		url       string
		connected bool
	}{
		{"connected", b.URL(), true},
		{"no broker", fmt.Sprintf("tcp://127.0.0.1:%d", testlib.FreePort(t)), false}, // reconnecting when closed
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			bus := events.NewBus()
			p := newPublisher(t, tc.url, bus, func(o *Options) { o.Alarm = func() bool { return false } })
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
			if err := p.Start(); err == nil {
				t.Error("Start twice: no error")
			}
			waitFor(t, "a connection attempt", 5*time.Second, func() bool { s := p.Stats(); return s.Connected || s.LastError != "" })
			if p.Stats().Connected != tc.connected {
				t.Fatalf("stats %+v", p.Stats())
			}
			bus.Publish(decision(5, events.Reject)) // and its generation's state: 2 messages
			waitFor(t, "the reject handled", 5*time.Second, func() bool {
				s := p.Stats()
				return tc.connected && s.Queued == 0 && s.Published == 2 || !tc.connected && s.Queued == 2
			})
			err := p.Close()
			if tc.connected && err != nil {
				t.Errorf("Close: %v", err)
			}
			if want := "2 messages not delivered"; !tc.connected && (err == nil || !strings.Contains(err.Error(), want)) {
				t.Errorf("Close with no broker: %v, want %q", err, want)
			}
			if err := p.Close(); err != nil {
				t.Errorf("Close twice: %v", err)
			}
			for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					buf := make([]byte, 1<<20)
					t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
				}
			}
		})
	}
}
