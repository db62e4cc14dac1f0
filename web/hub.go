package web

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/adtrd/adtrd/daemon"
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
	sub *daemon.Subscription

	mu      sync.Mutex
	ring    [EventRing]Event
	next    uint64 // id of the next event
	streams map[*stream]struct{}

	live     *liveView
	stop     chan struct{}
	wg       sync.WaitGroup
	once     sync.Once
	started  atomic.Bool
	streamed atomic.Uint64 // stream messages dropped (a slow browser)
}

// stream is one SSE client: a bounded queue of encoded messages.
type stream struct {
	c chan []byte
}

func newHub(p *daemon.Pipeline, heatmaps float64) *hub {
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
			h.broadcast("live", map[string]any{"seq": seq, "score": daemon.Round4(score)})
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
			close(s.c)
			delete(h.streams, s)
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
			if e.Kind == daemon.EventDecision && e.Map.Grid > 0 {
				h.live.offer(e)
			}
		}
	}
}

// add converts and keeps e, giving it the next id.
func (h *hub) add(e daemon.Event) Event {
	ev := Event{Kind: e.Kind.String(), Time: e.Time.UTC()}
	switch e.Kind {
	case daemon.EventDecision:
		r := e.Record
		ev.Seq, ev.Part, ev.Frame = r.Seq, r.Part, filepath.Base(r.Name)
		ev.Score, ev.Threshold = daemon.Round4(r.Score), daemon.Round4(r.Threshold)
		ev.Decision, ev.Reason, ev.Generation, ev.Model = r.Decision.String(), r.Reason.String(), r.Gen, r.Model
		if r.Err != nil {
			ev.Err = r.Err.Error()
		}
	case daemon.EventFailSafe:
		ev.Part, ev.Cause = e.Part, e.Cause
	case daemon.EventSourceLost:
		ev.Kind, ev.Err = "camera lost", e.Err
	case daemon.EventSourceBack:
		ev.Kind = "camera back"
	case daemon.EventReload:
		ev.Generation, ev.Model, ev.Threshold = e.Gen, e.Model, daemon.Round4(e.Threshold)
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
	first = max(first, after+1)
	out := []Event{}
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

func (h *hub) subscribe() *stream {
	s := &stream{c: make(chan []byte, 64)}
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.stop:
		close(s.c)
	default:
		h.streams[s] = struct{}{}
	}
	return s
}

func (h *hub) unsubscribe(s *stream) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.streams[s]; ok {
		delete(h.streams, s)
		close(s.c)
	}
}

func (h *hub) nstreams() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.streams)
}

// broadcast encodes one SSE message and offers it to every stream; a full stream
// loses it (counted), as the bus does.
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
		}
	}
}
