package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/adtrd/adtrd/events"
)

// Recording is one recorded frame as the API lists it.
type Recording struct {
	ID        string    `json:"id"`
	Time      time.Time `json:"time"`
	Seq       uint64    `json:"seq"`
	Part      uint64    `json:"part"`
	Frame     string    `json:"frame"` // the frame's base name
	Score     float64   `json:"score"`
	Threshold float64   `json:"threshold"`
	Decision  string    `json:"decision"`
	Label     string    `json:"label,omitempty"` // "", defect or false_reject
	Kind      string    `json:"kind,omitempty"`  // the defect's kind
}

// Recordings is what the page needs of the recorder.
type Recordings interface {
	Recent(n int) []Recording
	// Path is the file of a recording: frame.png, overlay.png or meta.json;
	// ErrNotFound for an unknown recording or file.
	Path(id, file string) (string, error)
	// Feedback labels a recording (label: defect or false_reject) and returns where
	// the labelled frame now is in the dataset; ErrBadRequest for a bad label or kind.
	Feedback(id, label, kind string) (string, error)
	Stats() map[string]any
}

// The errors a Recordings returns that become 404 and 400.
var (
	ErrNotFound   = errors.New("not found")
	ErrBadRequest = errors.New("bad request")
)

func (s *Server) status() map[string]any {
	p := s.opt.Pipeline
	g := p.Running()
	st := p.Counters()
	cam := map[string]any{"state": "up", "losses": st.CameraErrors.Load()}
	if at := p.CameraLost(); !at.IsZero() {
		cam["state"], cam["lost_since"] = "lost", at.UTC()
	}
	select {
	case <-p.FirstFrame():
	default:
		cam["state"] = "starting"
	}
	why := s.notReady()
	cfg := s.opt.ConfigPath
	if cfg == "" {
		cfg = "built-in demo"
	}
	out := map[string]any{
		"version": s.opt.Version, "started": s.started.UTC(), "uptime_s": int64(time.Since(s.started).Seconds()),
		"config": cfg, "generation": g.N, "threshold": events.Round4(g.Threshold),
		"model":  map[string]any{"path": g.ModelPath, "version": g.ModelVersion, "sha256": g.ModelSHA, "engine": g.Engine, "placement": g.Placement},
		"camera": cam, "alarm": s.opt.Line.Alarm(), "ready": why == "", "not_ready": why,
		"last_score": events.Round4(p.LastScore()),
		"counts": map[string]any{
			"frames": st.Frames.Load(), "rejects": st.Rejects.Load(), "dropped": st.Dropped.Load(),
			"bad_frames": st.BadFrames.Load(), "infer_errors": st.InferErrors.Load(), "unmatched": st.Unmatched.Load(),
		},
		"events_dropped": s.hub.sub.Dropped(), "stream_dropped": s.hub.streamed.Load(), "streams": s.hub.nstreams(),
		"streams_closed": s.hub.closed.Load(), "hosts_refused": s.hosts.refused.Load(),
		"mutations": s.opt.Token != "",
	}
	ls := s.opt.Line.Stats()
	out["counts"].(map[string]any)["fail_safes"] = ls.FailSafes()
	out["counts"].(map[string]any)["pulses"] = ls.Pulses
	if s.opt.Reloader != nil {
		rs := s.opt.Reloader.Status()
		rl := map[string]any{"applied": rs.Applied, "unchanged": rs.Unchanged, "failed": rs.Failed}
		if rs.Failed > 0 {
			rl["last_error"], rl["last_error_at"] = rs.LastError, rs.LastErrorAt.UTC()
		}
		out["reloads"] = rl
	}
	if s.opt.Recordings != nil {
		out["recordings"] = s.opt.Recordings.Stats()
	}
	return out
}

// events: GET /api/events?after=ID&limit=N&kind=K, oldest first.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, err := uintParam(q.Get("after"), 0)
	if err != nil {
		problem(w, http.StatusBadRequest, "after: "+err.Error())
		return
	}
	limit, err := uintParam(q.Get("limit"), 200)
	if err != nil || limit < 1 || limit > EventRing {
		problem(w, http.StatusBadRequest, fmt.Sprintf("limit: want 1..%d", EventRing))
		return
	}
	kind := q.Get("kind")
	switch kind {
	case "", "decision", "fault", "fail-safe", "camera lost", "camera back", "reload", "reload failed":
	default:
		problem(w, http.StatusBadRequest, "kind: want decision, fault, fail-safe, camera lost, camera back, reload or reload failed")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": s.hub.since(after, int(limit), kind)})
}

func uintParam(v string, def uint64) (uint64, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("over %d", uint64(math.MaxUint64))
	}
	if err != nil {
		return 0, errors.New("not a whole number")
	}
	return n, nil
}

// stream: GET /api/stream, Server-Sent Events: "event" (each API event), "live" (a
// new heatmap at /api/live.png) and "status" (every second). A stream is never
// refused (see hub.subscribe); one the server closes gets a last "closed" message
// saying why, and the browser reconnects after the "retry" time.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	if c, ok := r.Context().Value(connKey{}).(*net.TCPConn); ok {
		c.SetWriteBuffer(streamSendBuffer)
	}
	st := s.hub.subscribe(remoteIP(r.RemoteAddr))
	defer s.hub.unsubscribe(st)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	// A reader that stops reading fills the socket's buffers; the next write then
	// waits at most this long before the stream is closed.
	send := func(b []byte, wait time.Duration) bool {
		rc.SetWriteDeadline(time.Now().Add(wait))
		_, err := w.Write(b)
		if err == nil {
			err = rc.Flush()
		}
		if errors.Is(err, os.ErrDeadlineExceeded) { // too slow, before its queue filled
			s.hub.mu.Lock()
			s.hub.drop(st, fmt.Sprintf("too slow: a write waited %v", wait))
			s.hub.mu.Unlock()
		}
		return err == nil
	}
	status := func() bool {
		b, _ := json.Marshal(s.status())
		return send(append(append([]byte("event: status\ndata: "), b...), "\n\n"...), StreamWriteWait)
	}
	if !send([]byte("retry: 3000\n\n"), StreamWriteWait) || !status() {
		return
	}
	for {
		// quit first: a stream told to go does not write its queue out
		select {
		case <-st.quit:
			b, _ := json.Marshal(map[string]string{"reason": st.why})
			send(append(append([]byte("event: closed\ndata: "), b...), "\n\n"...), time.Second)
			return
		default:
		}
		select {
		case <-r.Context().Done():
			return
		case <-st.quit:
		case b := <-st.c:
			if !send(b, StreamWriteWait) {
				return
			}
		case <-tick.C:
			if !status() {
				return
			}
		}
	}
}

// remoteIP is the address part of a request's RemoteAddr.
func remoteIP(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

func (s *Server) recordings(w http.ResponseWriter, r *http.Request) {
	if s.opt.Recordings == nil {
		writeJSON(w, http.StatusOK, map[string]any{"recordings": []Recording{}, "off": true})
		return
	}
	n, err := uintParam(r.URL.Query().Get("limit"), 50)
	if err != nil || n < 1 || n > 1000 {
		problem(w, http.StatusBadRequest, "limit: want 1..1000")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"recordings": s.opt.Recordings.Recent(int(n))})
}

func (s *Server) recordingFile(w http.ResponseWriter, r *http.Request) {
	if s.opt.Recordings == nil {
		problem(w, http.StatusNotFound, "recordings are off")
		return
	}
	path, err := s.opt.Recordings.Path(r.PathValue("id"), r.PathValue("file"))
	if err != nil {
		problem(w, http.StatusNotFound, "no such recording file")
		return
	}
	f, err := os.Open(path)
	if err != nil {
		problem(w, http.StatusNotFound, "no such recording file")
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		problem(w, http.StatusNotFound, "no such recording file")
		return
	}
	w.Header().Set("Cache-Control", "private, max-age=3600") // a recording never changes but for its label (meta.json)
	if r.PathValue("file") == "meta.json" {
		w.Header().Set("Cache-Control", "no-store")
	}
	http.ServeContent(w, r, r.PathValue("file"), st.ModTime(), f)
}

// feedback: POST /api/recordings/{id}/feedback {"label": "defect"|"false_reject", "kind": "scratch"}.
func (s *Server) feedback(w http.ResponseWriter, r *http.Request) {
	if s.opt.Recordings == nil {
		problem(w, http.StatusNotFound, "recordings are off")
		return
	}
	var body struct {
		Label string `json:"label"`
		Kind  string `json:"kind"`
	}
	// The whole body first, so that one too big is 413 whatever it holds; then one
	// JSON object and nothing after it.
	raw, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		problem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", MaxBody))
		return
	case err != nil: // the client went away or sent a broken chunked body
		problem(w, http.StatusBadRequest, "body: cannot be read")
		return
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || dec.More() {
		problem(w, http.StatusBadRequest, "body: want one JSON object {\"label\": \"defect\"|\"false_reject\", \"kind\": \"...\"}")
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		problem(w, http.StatusBadRequest, "body: want one JSON object {\"label\": \"defect\"|\"false_reject\", \"kind\": \"...\"}")
		return
	}
	switch {
	case body.Label == "false_reject" && body.Kind != "":
		problem(w, http.StatusBadRequest, "kind: only a defect has a kind")
		return
	case body.Label == "defect" && body.Kind == "":
		body.Kind = "defect" // the recorder's default, said in the answer and the log
	}
	dest, err := s.opt.Recordings.Feedback(r.PathValue("id"), body.Label, body.Kind)
	switch {
	case errors.Is(err, ErrNotFound):
		problem(w, http.StatusNotFound, "no such recording")
		return
	case errors.Is(err, ErrBadRequest):
		problem(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		s.opt.Log.Warn("feedback failed", "recording", r.PathValue("id"), "err", err)
		problem(w, http.StatusInternalServerError, "feedback not saved: "+err.Error())
		return
	}
	s.opt.Log.Info("feedback", "recording", r.PathValue("id"), "label", body.Label, "kind", body.Kind)
	writeJSON(w, http.StatusOK, map[string]any{"id": r.PathValue("id"), "label": body.Label, "kind": body.Kind, "saved": dest})
}
