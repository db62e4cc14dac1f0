package web

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/adtrd/adtrd/events"
)

// Event is one entry of /api/events and of the stream's "event" messages. Frame is
// the frame's base name only (file names come from outside: the page escapes them).
type Event struct {
	ID         uint64    `json:"id"`
	Kind       string    `json:"kind"` // decision | fail-safe | camera lost | camera back | reload | reload failed
	Time       time.Time `json:"time"`
	Seq        uint64    `json:"seq,omitempty"`
	Part       uint64    `json:"part,omitempty"`
	Frame      string    `json:"frame,omitempty"`
	Score      float64   `json:"score"`
	Threshold  float64   `json:"threshold,omitempty"`
	Decision   string    `json:"decision,omitempty"` // pass | reject | alarm
	Reason     string    `json:"reason,omitempty"`
	Generation uint64    `json:"generation,omitempty"`
	Model      string    `json:"model,omitempty"`
	Cause      string    `json:"cause,omitempty"`
	Err        string    `json:"err,omitempty"`
}

// EventRing is how many recent events /api/events keeps.
const EventRing = 512

// hub turns bus events into the API's events, keeps the recent ones, fans them out to
// the streams and renders the live heatmap at most heatmaps times a second.
type hub struct {
	sub *events.Subscription

	mu      sync.Mutex
	ring    [EventRing]Event
	next    uint64 // id of the next event
	streams map[*stream]struct{}

	live     *liveView
	stop     chan struct{}
	wg       sync.WaitGroup
	once     sync.Once
	started  atomic.Bool
	streamed atomic.Uint64 // stream messages lost (each one closes a slow stream)
	closed   atomic.Uint64 // streams the server closed: too slow, or gave way to a new one
	opened   uint64        // streams opened, for their order; h.mu
}

// StreamQueue is how many messages a stream may be behind before it is closed.
const StreamQueue = 64

// stream is one SSE client: a bounded queue of encoded messages, closed by the hub
// (quit, with why) when its reader falls a whole queue behind or it gives way.
type stream struct {
	c    chan []byte
	quit chan struct{}
	why  string // set before quit is closed
	addr string // the client's IP address
	n    uint64 // its order of opening
}

func newHub(p Pipeline, heatmaps float64) *hub {
	h := &hub{sub: p.Events().Subscribe(1024), next: 1, streams: map[*stream]struct{}{}, stop: make(chan struct{})}
	h.live = newLiveView(p.Events(), heatmaps)
	return h
}

func (h *hub) start() {
	if h.started.Swap(true) {
		return
	}
	h.wg.Add(2)
	go h.run()
	go func() {
		defer h.wg.Done()
		h.live.run(h.stop, func(seq uint64, score float64) {
			h.broadcast("live", map[string]any{"seq": seq, "score": events.Round4(score)})
		})
	}()
}

func (h *hub) close() {
	h.once.Do(func() {
		close(h.stop)
		h.wg.Wait()
		h.sub.Close()
		h.mu.Lock()
		for s := range h.streams {
			h.drop(s, "the server is stopping")
		}
		h.mu.Unlock()
	})
}

func (h *hub) run() {
	defer h.wg.Done()
	for {
		select {
		case <-h.stop:
			return
		case e := <-h.sub.C():
			ev := h.add(e)
			h.broadcast("event", ev)
			if e.Kind == events.EventDecision && e.Map.Grid > 0 {
				h.live.offer(e)
			}
		}
	}
}

// add converts and keeps e, giving it the next id.
func (h *hub) add(e events.Event) Event {
	ev := Event{Kind: e.Kind.String(), Time: e.Time.UTC()}
	switch e.Kind {
	case events.EventDecision:
		r := e.Record
		ev.Seq, ev.Part, ev.Frame = r.Seq, r.Part, filepath.Base(r.Name)
		ev.Score, ev.Threshold = events.Round4(r.Score), events.Round4(r.Threshold)
		ev.Decision, ev.Reason, ev.Generation, ev.Model = r.Decision.String(), r.Reason.String(), r.Gen, r.Model
		if r.Err != nil {
			ev.Err = r.Err.Error()
		}
	case events.EventFailSafe:
		ev.Part, ev.Cause = e.Part, e.Cause
	case events.EventSourceLost:
		ev.Kind, ev.Err = "camera lost", e.Err
	case events.EventSourceBack:
		ev.Kind = "camera back"
	case events.EventReload:
		ev.Generation, ev.Model, ev.Threshold = e.Gen, e.Model, events.Round4(e.Threshold)
		if e.Err != "" {
			ev.Kind, ev.Err = "reload failed", e.Err
		}
	}
	h.mu.Lock()
	ev.ID = h.next
	h.next++
	h.ring[ev.ID%EventRing] = ev
	h.mu.Unlock()
	return ev
}

// since returns the kept events with id > after, oldest first, kind-filtered when
// kind is not "": the first limit of them after an id (a client paging forward), the
// last limit when after is 0 (a page loading the recent past).
func (h *hub) since(after uint64, limit int, kind string) []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	first := uint64(1)
	if h.next > EventRing {
		first = h.next - EventRing
	}
	out := []Event{}
	if after >= h.next-1 {
		return out // none yet; and after+1 would wrap for the largest id
	}
	first = max(first, after+1)
	for id := first; id < h.next; id++ {
		ev := h.ring[id%EventRing]
		if kind != "" && ev.Kind != kind && !(kind == "fault" && isFault(ev)) {
			continue
		}
		out = append(out, ev)
		if after > 0 && len(out) == limit {
			break
		}
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}

// isFault: what the page lists as faults.
func isFault(ev Event) bool {
	switch ev.Kind {
	case "fail-safe", "camera lost", "reload failed":
		return true
	}
	return ev.Kind == "decision" && ev.Reason != "score"
}

// subscribe opens a stream for a client at addr. A new stream is never refused: when
// addr already has MaxStreamsPerAddr open, its oldest gives way; when MaxStreams are
// open, the oldest of the address with the most gives way. A client that opens and
// never reads can therefore not keep the operators out; the browser whose stream gave
// way reconnects by itself.
func (h *hub) subscribe(addr string) *stream {
	s := &stream{c: make(chan []byte, StreamQueue), quit: make(chan struct{}), addr: addr}
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.stop:
		s.why = "the server is stopping"
		close(s.quit)
		return s
	default:
	}
	per := map[string]int{}
	for o := range h.streams {
		per[o.addr]++
	}
	switch {
	case per[addr] >= MaxStreamsPerAddr:
		h.drop(h.oldest(addr), "too many streams from one address: the oldest gives way")
	case len(h.streams) >= MaxStreams:
		top := ""
		for a, n := range per {
			if n > per[top] || (n == per[top] && a < top) {
				top = a
			}
		}
		h.drop(h.oldest(top), "too many streams: the oldest of the busiest address gives way")
	}
	h.opened++
	s.n = h.opened
	h.streams[s] = struct{}{}
	return s
}

// oldest is addr's first opened stream. h.mu held.
func (h *hub) oldest(addr string) *stream {
	var old *stream
	for s := range h.streams {
		if s.addr == addr && (old == nil || s.n < old.n) {
			old = s
		}
	}
	return old
}

// drop closes s for why. h.mu held.
func (h *hub) drop(s *stream, why string) {
	if _, ok := h.streams[s]; !ok {
		return
	}
	delete(h.streams, s)
	s.why = why
	close(s.quit)
	h.closed.Add(1)
}

func (h *hub) unsubscribe(s *stream) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.streams, s)
}

func (h *hub) nstreams() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.streams)
}

// broadcast encodes one SSE message and offers it to every stream. A stream whose
// queue is full is closed rather than left to lose messages without a word: its
// reader has stopped or cannot keep up, and the page, reconnecting, fills the gap
// from /api/events.
func (h *hub) broadcast(name string, v any) {
	var b bytes.Buffer
	b.WriteString("event: ")
	b.WriteString(name)
	b.WriteString("\ndata: ")
	json.NewEncoder(&b).Encode(v) // ends with "\n"
	b.WriteString("\n")
	msg := b.Bytes()
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.streams {
		select {
		case s.c <- msg:
		default:
			h.streamed.Add(1)
			h.drop(s, "too slow: the stream fell "+strconv.Itoa(StreamQueue)+" messages behind")
		}
	}
}
