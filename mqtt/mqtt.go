// Package mqtt publishes adtrd's decisions, faults and state changes to an MQTT 3.1.1
// broker, holding a bounded number of messages in memory while the broker is away.
package mqtt

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/events"
)

const (
	// busBuffer is the bus subscription's channel: the consumer only encodes and
	// moves events into the ring, so this covers scheduling hiccups, not outages.
	busBuffer = 256
	// window is how many messages may wait for their PUBACK at once: one at a time
	// would cap a 5 ms round trip at 200 messages a second, below a camera's rate
	// with decisions: all.
	window = 32
	// connectTimeout bounds one attempt (TCP, TLS and CONNACK), and so Close.
	connectTimeout = 5 * time.Second
	// writeTimeout bounds handing one message to a connection that does not drain.
	writeTimeout = 5 * time.Second
	// ackTimeout: a PUBACK later than this means a connection that is dead without
	// knowing it; the unacknowledged messages are sent again (QoS 1 allows
	// duplicates, not losses).
	ackTimeout = 10 * time.Second
	// retryPause follows a failed send, while the connection's loss is being noticed.
	retryPause = 200 * time.Millisecond
	// flushTimeout is how long Close waits for the buffer to reach the broker.
	flushTimeout = 2 * time.Second
	// closeAckTimeout is how long Close waits for "offline" to be acknowledged.
	closeAckTimeout = time.Second
	// alarmPoll: the alarm is not on the bus, so its changes are seen this late.
	alarmPoll = 100 * time.Millisecond
	// Reconnection backoff: doubled after each failed attempt (and after a
	// connection that did not last backoffMax, so a broker that accepts and drops
	// at once is not hammered), with up to a quarter more at random so that a
	// plant's daemons do not all come back in the same instant.
	backoffMin = 100 * time.Millisecond
	backoffMax = 10 * time.Second
	// takeover: a connection the broker closes (EOF, reset) within this of its
	// connect, twice running, with each next connect accepted at once, is taken over:
	// what a broker does when another client connects with the same client id. Two
	// lines doing that to each other keep their connections up to backoffMax and a
	// quarter each.
	takeover      = time.Minute
	takeoverTimes = 2
)

// Options configure a Publisher.
type Options struct {
	Config config.MQTT
	Bus    *events.Bus
	Alarm  func() bool // the alarm output's state (the tracker's Alarm), polled; nil: always off
	Log    *slog.Logger
	Host   string // names this daemon in every message; "": os.Hostname
}

// Stats are the publisher's counters.
type Stats struct {
	Published  uint64 // messages the broker acknowledged
	Dropped    uint64 // messages dropped, the oldest first, because the buffer was full
	BusDropped uint64 // events the bus dropped because this publisher fell behind
	Queued     int    // messages not yet acknowledged: buffered or in flight
	Connected  bool
	Connects   uint64 // connections made
	Reconnects uint64 // of them, those after the first
	LastError  string // the last connection or publish error; "": none yet
}

// Publisher sends events from the bus to the broker. Topics, under the prefix
// mqtt.topic, all QoS 1:
//
//	<prefix>/decision      each decision (mqtt.decisions: rejects, the default, sends
//	                       those that are not a pass: reject and the fail-safe's alarm)
//	                       {"time","host","seq","part","frame","score","threshold",
//	                        "decision","reason","generation","model","err"}
//	<prefix>/fault         {"time","host","kind","part","cause","err","generation"},
//	                       kind "fail-safe" (part, cause), "camera lost" (err) or
//	                       "reload failed" (err; generation: the one still running)
//	<prefix>/state         {"time","host","change","camera","alarm","generation"} at each
//	                       connection and change; change "connect", "camera", "alarm" or
//	                       "generation"; camera "up" or "lost"; generation 0: not known yet
//	<prefix>/availability  "online" (retained) once connected; "offline" (retained) at
//	                       Close, and as the last will when the connection drops
//
// time is RFC 3339 in UTC with nanoseconds; score and threshold are rounded to 4
// decimals like the daemon's log (null if not finite); frame is the base name; model
// is the generation's model sha256; err is "" when there is none. Every message has
// every field of its topic.
//
// Messages wait in a ring of mqtt.buffer entries until the broker acknowledges them,
// so a broker restart loses none that fit; when the ring is full the oldest goes.
// Paho's own store is not used for that: with its automatic reconnection a publish
// while reconnecting is kept there without a bound, so this publisher reconnects by
// itself, with a fresh client each time, and publishes only on an open connection.
type Publisher struct {
	cfg    config.MQTT
	broker string // cfg.Broker without any password, for errors and logs
	bus    *events.Bus
	alarm  func() bool
	log    *slog.Logger
	host   string
	topics [topicCount]string
	opts   paho.ClientOptions // each connection's client is made from a copy

	backoffMin, backoffMax time.Duration // tests shorten them

	life        sync.Mutex // Start and Close
	started     bool
	closed      bool
	stopConsume chan struct{} // the consumer and the alarm poller
	stopSend    chan struct{}
	stopConn    chan struct{}
	consumeWG   sync.WaitGroup
	sendWG      sync.WaitGroup
	connWG      sync.WaitGroup
	wake        chan struct{} // something for the sender: a message, a connection

	mu         sync.Mutex // everything below
	sub        *events.Subscription
	ring       ring
	st         state
	client     paho.Client // connected, "online" acknowledged; nil: none
	published  uint64
	dropped    uint64
	connects   uint64
	failures   uint64 // failed attempts, for tests
	lastError  string
	outage     time.Time // when the broker went away; zero: it has not
	outageDrop uint64    // dropped when it did
	dropLogged bool      // the buffer's overflow is logged once until it empties
}

// New checks opt, reads the password file and prepares the client. It does not
// reach for the broker: Start does, in the background.
func New(opt Options) (*Publisher, error) {
	c := opt.Config
	switch {
	case c.Broker == "":
		return nil, errors.New("mqtt: no broker (mqtt.broker is empty: publishing is off)")
	case opt.Bus == nil:
		return nil, errors.New("mqtt: no event bus")
	case c.Buffer < 1:
		return nil, fmt.Errorf("mqtt: buffer %d: want at least 1 message", c.Buffer)
	case c.Topic == "":
		return nil, errors.New("mqtt: no topic prefix")
	case c.PasswordFile != "" && c.Username == "":
		return nil, fmt.Errorf("mqtt: password file %s without a username: MQTT 3.1.1 sends a password only with one", c.PasswordFile)
	}
	if c.ClientID == "" {
		c.ClientID = DefaultClientID(c.Topic)
	}
	u, err := url.Parse(c.Broker)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("mqtt: broker %q: want tcp://host:port or ssl://host:port", c.Broker)
	}
	p := &Publisher{
		cfg: c, broker: u.Redacted(), bus: opt.Bus, alarm: opt.Alarm, log: opt.Log, host: opt.Host,
		backoffMin: backoffMin, backoffMax: backoffMax,
		stopConsume: make(chan struct{}), stopSend: make(chan struct{}), stopConn: make(chan struct{}),
		wake: make(chan struct{}, 1), ring: newRing(c.Buffer),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.host == "" {
		if p.host, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("mqtt: host name: %w", err)
		}
	}
	for t, name := range topicNames {
		p.topics[t] = c.Topic + "/" + name
	}
	o := paho.NewClientOptions().
		AddBroker(c.Broker).
		SetClientID(c.ClientID).
		SetProtocolVersion(4). // 3.1.1, no silent fallback to 3.1
		SetCleanSession(true). // it subscribes to nothing: the session holds nothing worth keeping
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(connectTimeout).
		SetWriteTimeout(writeTimeout).
		SetKeepAlive(15*time.Second).
		SetPingTimeout(5*time.Second).
		SetWill(p.topics[topicAvailability], "offline", 1, true)
	if c.Username != "" {
		o.SetUsername(c.Username)
	}
	if c.PasswordFile != "" {
		pw, err := config.ReadSecret(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt: password file: %w", err)
		}
		o.SetPassword(pw)
	}
	p.opts = *o
	return p, nil
}

// Start subscribes to the bus and connects in the background; it never waits for
// the broker, which may come up later or go away at any time.
func (p *Publisher) Start() error {
	p.life.Lock()
	defer p.life.Unlock()
	switch {
	case p.closed:
		return errors.New("mqtt: publisher closed")
	case p.started:
		return errors.New("mqtt: publisher already started")
	}
	p.started = true
	if p.alarm != nil {
		on := p.alarm()
		p.mu.Lock()
		p.st.alarm = on
		p.mu.Unlock()
	}
	sub := p.bus.Subscribe(busBuffer)
	p.mu.Lock()
	p.sub = sub
	p.mu.Unlock()
	p.consumeWG.Add(1)
	go p.consume()
	if p.alarm != nil {
		p.consumeWG.Add(1)
		go p.pollAlarm()
	}
	p.sendWG.Add(1)
	go p.send()
	p.connWG.Add(1)
	go p.connectLoop()
	return nil
}

// Close stops taking events, gives the buffer up to flushTimeout to reach a
// connected broker, says "offline" and disconnects; every goroutine has ended when
// it returns. Messages still buffered are lost (they are in memory only), and the
// error says how many. Safe twice, and without Start.
func (p *Publisher) Close() error {
	p.life.Lock()
	defer p.life.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if !p.started {
		return nil
	}
	p.sub.Close()
	close(p.stopConsume)
	p.consumeWG.Wait()
	for deadline := time.Now().Add(flushTimeout); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if s := p.Stats(); !s.Connected || s.Queued == 0 {
			break
		}
	}
	close(p.stopSend)
	p.sendWG.Wait()
	close(p.stopConn)
	p.connWG.Wait()

	p.mu.Lock()
	c, left := p.client, p.ring.n
	p.client = nil
	p.mu.Unlock()
	var err error
	if c != nil {
		err = p.publishNow(c, topicAvailability, true, []byte("offline"), closeAckTimeout)
		c.Disconnect(250)
	}
	if left > 0 {
		lost := fmt.Errorf("mqtt: broker %s: %d messages not delivered at close", p.broker, left)
		if err != nil {
			lost = fmt.Errorf("%w; %v", lost, err)
		}
		err = lost
	}
	return err
}

// Stats reads the counters; safe at any time.
func (p *Publisher) Stats() Stats {
	p.mu.Lock()
	s := Stats{
		Published: p.published, Dropped: p.dropped, Queued: p.ring.n, Connected: p.client != nil,
		Connects: p.connects, Reconnects: max(p.connects, 1) - 1, LastError: p.lastError,
	}
	sub := p.sub
	p.mu.Unlock()
	if sub != nil {
		s.BusDropped = sub.Dropped()
	}
	return s
}

// consume moves the bus's events into the ring, encoded; it never waits for the
// broker, so a slow or absent broker costs the bus nothing but this ring's drops.
func (p *Publisher) consume() {
	defer p.consumeWG.Done()
	c := p.sub.C()
	for {
		select {
		case e := <-c:
			p.handle(e)
		case <-p.stopConsume:
			for { // what the bus delivered before the subscription closed
				select {
				case e := <-c:
					p.handle(e)
				default:
					return
				}
			}
		}
	}
}

// handle turns one event into its messages.
func (p *Publisher) handle(e events.Event) {
	switch e.Kind {
	case events.EventDecision:
		r := e.Record
		p.mu.Lock()
		if r.Gen > p.st.gen { // the first decision tells the generation running
			p.st.gen = r.Gen
			p.pushState(e.Time, changeGeneration)
		}
		p.mu.Unlock()
		if p.wants(r.Decision) {
			p.enqueue(topicDecision, decisionPayload(p.host, e))
		}
	case events.EventFailSafe:
		p.mu.Lock()
		gen := p.st.gen
		p.mu.Unlock()
		p.enqueue(topicFault, faultPayload(p.host, e.Time, faultFailSafe, e.Part, e.Cause, "", gen))
	case events.EventSourceLost:
		p.mu.Lock()
		p.st.cameraLost = true
		p.push(topicFault, faultPayload(p.host, e.Time, faultCameraLost, 0, "", e.Err, p.st.gen))
		p.pushState(e.Time, changeCamera)
		p.mu.Unlock()
		p.signal()
	case events.EventSourceBack:
		p.mu.Lock()
		p.st.cameraLost = false
		p.pushState(e.Time, changeCamera)
		p.mu.Unlock()
		p.signal()
	case events.EventReload:
		if e.Err != "" {
			p.enqueue(topicFault, faultPayload(p.host, e.Time, faultReloadFailed, 0, "", e.Err, e.Gen))
			return
		}
		p.mu.Lock()
		p.st.gen = e.Gen
		p.pushState(e.Time, changeGeneration)
		p.mu.Unlock()
		p.signal()
	}
}

// wants says whether mqtt.decisions publishes d. "rejects" takes the fail-safe's
// alarm decisions too: like a reject, each is a part the plant must look at.
func (p *Publisher) wants(d events.Decision) bool {
	switch p.cfg.Decisions {
	case config.DecisionsAll:
		return true
	case config.DecisionsRejects:
		return d != events.Pass
	}
	return false
}

// pollAlarm publishes the alarm output's changes.
func (p *Publisher) pollAlarm() {
	defer p.consumeWG.Done()
	t := time.NewTicker(alarmPoll)
	defer t.Stop()
	for {
		select {
		case <-p.stopConsume:
			return
		case <-t.C:
		}
		on := p.alarm()
		p.mu.Lock()
		changed := on != p.st.alarm
		if changed {
			p.st.alarm = on
			p.pushState(time.Now(), changeAlarm)
		}
		p.mu.Unlock()
		if changed {
			p.signal()
		}
	}
}

// enqueue adds one message to the ring and wakes the sender.
func (p *Publisher) enqueue(t topic, payload []byte) {
	p.mu.Lock()
	p.push(t, payload)
	p.mu.Unlock()
	p.signal()
}

// pushState queues the current state; p.mu held.
func (p *Publisher) pushState(at time.Time, change string) {
	p.push(topicState, statePayload(p.host, at, change, p.st))
}

// push adds a message, dropping the oldest if the ring is full; p.mu held. The first
// drop until the ring empties again is logged.
func (p *Publisher) push(t topic, payload []byte) {
	if !p.ring.push(t, payload) {
		return
	}
	p.dropped++
	if !p.dropLogged {
		p.dropLogged = true
		p.log.Warn("mqtt: buffer full: dropping the oldest messages", "broker", p.broker, "buffer", p.cfg.Buffer)
	}
}

func (p *Publisher) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// flight is a message handed to paho, waiting for its PUBACK.
type flight struct {
	id       uint64
	tok      paho.Token
	deadline time.Time
}

// send publishes the ring in order over the current connection, up to window
// messages ahead of the acknowledgements. A message leaves the ring only when
// acknowledged; a failure, a timeout or a new connection sends again from the oldest.
func (p *Publisher) send() {
	defer p.sendWG.Done()
	var (
		fl   []flight
		next uint64      // the id to send next: the ring's oldest from it on are unsent
		fc   paho.Client // the connection fl went out on
	)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		p.mu.Lock()
		c := p.client
		p.mu.Unlock()
		if c != fc { // a connection lost or a new one: whatever was in flight is resent
			fl, next, fc = fl[:0], 0, c
		}
		for c != nil && len(fl) < window {
			p.mu.Lock()
			m, ok := p.ring.from(next)
			p.mu.Unlock()
			if !ok {
				break
			}
			tok := c.Publish(p.topics[m.topic], 1, false, m.payload)
			fl = append(fl, flight{id: m.id, tok: tok, deadline: time.Now().Add(ackTimeout)})
			next = m.id + 1
		}
		var done <-chan struct{}
		if len(fl) > 0 {
			done = fl[0].tok.Done()
			timer.Reset(time.Until(fl[0].deadline))
		}
		failed := false
		select {
		case <-p.stopSend:
			return
		case <-p.wake:
		case <-done:
			if err := fl[0].tok.Error(); err != nil {
				p.sendFailed(err)
				failed = true
				break
			}
			p.mu.Lock()
			p.ring.ack(fl[0].id)
			p.published++
			if p.ring.n == 0 {
				p.dropLogged = false
			}
			p.mu.Unlock()
			fl = append(fl[:0], fl[1:]...)
		case <-timer.C:
			p.log.Warn("mqtt: no acknowledgement from the broker: sending again", "broker", p.broker, "after", ackTimeout, "messages", len(fl))
			p.sendFailed(fmt.Errorf("no acknowledgement within %v", ackTimeout))
			failed = true
		}
		timer.Stop()
		if failed {
			fl, next = fl[:0], 0
			select {
			case <-p.stopSend:
				return
			case <-time.After(retryPause):
			}
		}
	}
}

func (p *Publisher) sendFailed(err error) {
	p.mu.Lock()
	p.lastError = p.brokerErr("publish", err).Error()
	p.mu.Unlock()
}

// connectLoop keeps one connection up, reconnecting with capped exponential backoff,
// and logs each outage once when it starts and once when it ends.
func (p *Publisher) connectLoop() {
	defer p.connWG.Done()
	delay := p.backoffMin
	closed := 0 // connections the broker closed soon after connect, running
	for {
		c, lost, err := p.connect()
		if err != nil {
			p.unreachable(err)
			closed = 0 // the broker went away: not a take-over
		} else {
			since := time.Now()
			p.up(c)
			select {
			case err := <-lost:
				p.down(c, err)
				if time.Since(since) < takeover && closedByBroker(err) {
					closed++
				} else {
					closed = 0
				}
				if closed == takeoverTimes {
					p.takenOver(closed)
				}
			case <-p.stopConn:
				return // Close says offline and disconnects
			}
			if time.Since(since) >= p.backoffMax {
				delay = p.backoffMin
			}
		}
		select {
		case <-p.stopConn:
			return
		case <-time.After(delay + rand.N(delay/4+1)):
		}
		delay = min(2*delay, p.backoffMax)
	}
}

// connect makes a client, connects it and publishes "online" and the state; lost
// receives the connection's loss.
func (p *Publisher) connect() (paho.Client, <-chan error, error) {
	lost := make(chan error, 1)
	o := p.opts
	o.SetConnectionLostHandler(func(_ paho.Client, err error) {
		select {
		case lost <- err:
		default:
		}
	})
	c := paho.NewClient(&o)
	tok := c.Connect()
	if !tok.WaitTimeout(2 * connectTimeout) { // connectTimeout bounds it: a safety net
		c.Disconnect(0)
		return nil, nil, fmt.Errorf("mqtt: broker %s: no answer within %v", p.broker, 2*connectTimeout)
	}
	if err := tok.Error(); err != nil {
		return nil, nil, p.brokerErr("", err)
	}
	if err := p.publishNow(c, topicAvailability, true, []byte("online"), ackTimeout); err != nil {
		c.Disconnect(0)
		return nil, nil, err
	}
	// The state goes ahead of the buffer, so that a full buffer does not lose a
	// decision for it; the buffer's older state messages, if any, end with this same
	// state (each change since is in there too).
	p.mu.Lock()
	st := statePayload(p.host, time.Now(), changeConnect, p.st)
	p.mu.Unlock()
	if err := p.publishNow(c, topicState, false, st, ackTimeout); err != nil {
		c.Disconnect(0)
		return nil, nil, err
	}
	return c, lost, nil
}

// publishNow publishes one message outside the ring and waits for its PUBACK.
func (p *Publisher) publishNow(c paho.Client, t topic, retained bool, payload []byte, timeout time.Duration) error {
	tok := c.Publish(p.topics[t], 1, retained, payload)
	if !tok.WaitTimeout(timeout) {
		return fmt.Errorf("mqtt: broker %s: %s: no acknowledgement within %v", p.broker, p.topics[t], timeout)
	}
	if err := tok.Error(); err != nil {
		return p.brokerErr(p.topics[t], err)
	}
	return nil
}

// up makes c the connection the sender uses.
func (p *Publisher) up(c paho.Client) {
	p.mu.Lock()
	p.client = c
	p.connects++
	outage, dropped := p.outage, p.dropped-p.outageDrop
	p.outage = time.Time{}
	queued := p.ring.n
	p.mu.Unlock()
	p.signal()
	if outage.IsZero() {
		p.log.Info("mqtt: connected", "broker", p.broker, "topic", clip(p.cfg.Topic), "client_id", p.cfg.ClientID)
		return
	}
	p.log.Info("mqtt: broker back", "broker", p.broker, "outage", time.Since(outage).Round(time.Millisecond),
		"dropped", dropped, "queued", queued)
}

// down ends c's use and starts an outage.
func (p *Publisher) down(c paho.Client, err error) {
	err = p.brokerErr("connection lost", err)
	p.mu.Lock()
	if p.client == c {
		p.client = nil
	}
	p.lastError = err.Error()
	p.outage, p.outageDrop = time.Now(), p.dropped
	p.mu.Unlock()
	p.log.Warn("mqtt: broker lost: buffering, the oldest dropped when full", "err", err, "buffer", p.cfg.Buffer)
}

// closedByBroker says whether a connection ended because the broker closed it (a
// take-over, a kick, a restart), not because the network or this client failed.
func closedByBroker(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// takenOver says, once per run of them, that the broker keeps closing the
// connection right after accepting it: most likely another client (another line left
// at the same mqtt.client_id) connects with this id and takes the session, and each
// take-over fires this line's last will ("offline") for everyone watching.
func (p *Publisher) takenOver(n int) {
	err := fmt.Errorf("mqtt: broker %s closed the connection %d times running within %v of accepting it: another client with client_id %s is likely taking the session over (give each line its own mqtt.client_id)",
		p.broker, n, takeover, p.cfg.ClientID)
	p.mu.Lock()
	p.lastError = err.Error()
	p.mu.Unlock()
	p.log.Warn("mqtt: session taken over", "err", err, "client_id", p.cfg.ClientID)
}

// unreachable records a failed attempt; the first of an outage is logged.
func (p *Publisher) unreachable(err error) {
	p.mu.Lock()
	p.lastError = err.Error()
	p.failures++
	first := p.outage.IsZero()
	if first {
		p.outage, p.outageDrop = time.Now(), p.dropped
	}
	p.mu.Unlock()
	if first {
		p.log.Warn("mqtt: broker unreachable: buffering, the oldest dropped when full", "err", err, "buffer", p.cfg.Buffer)
	}
}

// brokerErr names the broker and keeps the root cause (connection refused, i/o
// timeout, a refused CONNECT) rather than paho's nesting of it.
func (p *Publisher) brokerErr(what string, err error) error {
	var errno syscall.Errno
	var dns *net.DNSError
	switch {
	case errors.As(err, &errno):
		err = errno
	case errors.As(err, &dns):
		err = dns
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = os.ErrDeadlineExceeded
	}
	if what != "" {
		return fmt.Errorf("mqtt: broker %s: %s: %w", p.broker, what, err)
	}
	return fmt.Errorf("mqtt: broker %s: %w", p.broker, err)
}

// logTopic is the most of a topic a log line shows: a topic may be 65,522 bytes, a
// log line should not.
const logTopic = 200

// clip shortens a topic for a log line, saying how long it was.
func clip(topic string) string {
	if len(topic) <= logTopic {
		return topic
	}
	cut := logTopic
	for cut > 0 && !utf8.RuneStart(topic[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes)", topic[:cut], len(topic))
}
