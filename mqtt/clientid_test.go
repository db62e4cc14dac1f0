package mqtt

import (
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/internal/testlib"
)

// The default client id is what every MQTT 3.1.1 broker must accept, and differs
// wherever two lines could meet on one broker.
func TestDefaultClientID(t *testing.T) {
	const mid = "0123456789abcdef0123456789abcdef"
	base := clientID("line3", mid, "adtrd")
	for _, tc := range []struct {
		name                string
		host, machine, topc string
		prefix              string // the readable part
		same                bool   // the same id as base
	}{
		{"plain host", "line3", mid, "adtrd", "adtrdline3", true},                                      // stable: the same inputs, the same id
		{"another host", "line4", mid, "adtrd", "adtrdline4", false},                                   // another line's machine
		{"cloned image", "line3", "fedcba9876543210fedcba9876543210", "adtrd", "adtrdline3", false},    // one host name, another machine id
		{"second line on the host", "line3", mid, "plant/line3b", "adtrdline3", false},                 // two daemons on one machine differ by topic
		{"no machine id", "line3", "", "adtrd", "adtrdline3", false},                                   // containers: the host name alone
		{"fqdn", "jetson-orin-nano-line-03.plant.example.com", mid, "adtrd", "adtrdjetsonorin", false}, // the first label, letters and digits, 10 at most
		{"no host name", "", "", "adtrd", "adtrd", false},                                              // still a valid id
		{"non-ASCII host", "linie-ä3", mid, "adtrd", "adtrdlinie3", false},                             // only 0-9a-zA-Z
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := clientID(tc.host, tc.machine, tc.topc)
			if len(id) < 1 || len(id) > 23 || strings.ContainsFunc(id, func(r rune) bool {
				return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
			}) {
				t.Fatalf("%q: not 1..23 of 0-9a-zA-Z", id)
			}
			if !strings.HasPrefix(id, tc.prefix) || len(id) != len(tc.prefix)+8 || (id == base) != tc.same {
				t.Fatalf("%q: want %s and 8 hex digits, same as %q: %v", id, tc.prefix, base, tc.same)
			}
		})
	}
	host, _ := os.Hostname()
	if id := DefaultClientID("adtrd"); !strings.HasPrefix(id, "adtrd") || len(id) > 23 || id != DefaultClientID("adtrd") || id == DefaultClientID("line2") {
		t.Fatalf("this machine's (%s): %q", host, id)
	}
}

// config refuses a topic that the longest suffix would take over MQTT's limit: hold
// the publisher's suffixes to it.
func TestTopicSuffixesFitTheConfigsLimit(t *testing.T) {
	longest := 0
	for _, name := range topicNames {
		longest = max(longest, len("/"+name))
	}
	if longest != len(config.MQTTLongestSuffix) {
		t.Fatalf("the longest suffix is %d bytes, config.MQTTLongestSuffix %q", longest, config.MQTTLongestSuffix)
	}
}

// Two lines left on the default client id, on one machine (field case 19): each has
// an id of its own, so neither takes the other's session: what each publishes after
// both are connected reaches the broker on its first connection.
func TestTwoLinesOnTheDefaultsKeepTheirSessions(t *testing.T) {
	b := testlib.StartMosquitto(t)
	sub := subscribe(t, b.URL(), "dashboard", true, "#")
	var ps []*Publisher
	var buses []*events.Bus
	for _, topic := range []string{"line1", "line2"} {
		bus := events.NewBus()
		p := newPublisher(t, b.URL(), bus, func(o *Options) { o.Config.ClientID, o.Config.Topic = "", topic })
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, topic+" to connect", 15*time.Second, func() bool { return p.Stats().Connected })
		ps, buses = append(ps, p), append(buses, bus)
	}
	if ps[0].cfg.ClientID == ps[1].cfg.ClientID {
		t.Fatalf("both lines are %q", ps[0].cfg.ClientID)
	}
	for _, bus := range buses {
		bus.Publish(decision(1, events.Reject))
	}
	got := map[string]bool{}
	deadline := time.After(30 * time.Second)
	for !got["line1/decision"] || !got["line2/decision"] {
		select {
		case m := <-sub.ch:
			got[m.topic] = true
		case <-deadline:
			t.Fatalf("decisions received: %v", got)
		}
	}
	for i, p := range ps {
		if s := p.Stats(); s.Connects != 1 {
			t.Fatalf("line%d: %d connections (%s): its session was taken", i+1, s.Connects, s.LastError)
		}
	}
}

// Two lines given one client id take the session from each other in turn: the log
// and the publisher's last error name the likely cause instead of only "broker lost".
func TestASessionTakenOverIsNamed(t *testing.T) {
	b := testlib.StartMosquitto(t)
	var ls []*logs
	var ps []*Publisher
	for _, topic := range []string{"line1", "line2"} {
		l := &logs{}
		p := newPublisher(t, b.URL(), events.NewBus(), func(o *Options) {
			o.Config.ClientID, o.Config.Topic, o.Log = "adtrd", topic, slog.New(l)
		})
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		ls, ps = append(ls, l), append(ps, p)
	}
	named := func() bool {
		for i, l := range ls {
			for _, line := range l.lines() {
				if strings.HasPrefix(line, "mqtt: session taken over") && strings.Contains(ps[i].Stats().LastError, "another client with client_id adtrd is likely taking the session over") {
					return true
				}
			}
		}
		return false
	}
	waitFor(t, "a take-over to be named", 60*time.Second, named)
}
