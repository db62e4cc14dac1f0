// Package web is the operators' view: the status page, /metrics, health checks, a JSON
// API and live Server-Sent Events, fed by the pipeline's bus without ever blocking it.
package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/gpio"
)

//go:embed static
var static embed.FS

// ErrListen: Start could not listen on the address (or New was given none).
var ErrListen = errors.New("http: cannot listen")

// Pipeline is what the page reads from the frame loop (daemon.Pipeline): its event
// bus, its counters and the generation in use, and whether the camera runs.
type Pipeline interface {
	Events() *events.Bus
	Counters() *events.Stats
	Running() events.GenInfo
	// FirstFrame is closed once the first frame is decided.
	FirstFrame() <-chan struct{}
	// CameraLost is when the camera was lost; zero while it runs.
	CameraLost() time.Time
	LastScore() float64
}

// Line is what the page reads from and does to the tracker.
type Line interface {
	Alarm() bool
	ResetAlarm()
	Stats() gpio.Stats
}

// Options configure the server. Pipeline and Line are required.
type Options struct {
	Address string // host:port; "" is refused by New (the caller leaves the server off)
	// Hosts are names and addresses a request's Host may give besides the server's
	// own (see hostCheck): a reverse proxy's name, a DNS alias of the line PC.
	Hosts    []string
	Token    string // bearer token for POSTs; "": every POST is refused with 403
	Heatmaps float64
	Version  string
	Pipeline Pipeline
	Line     Line
	Reloader interface {
		Reload(reason string) error
		Status() events.ReloadStatus
	}
	Metrics    http.Handler // /metrics; nil: 404
	Recordings Recordings   // nil: recordings are off
	ConfigPath string       // "": the built-in demo
	// Mutations: POSTs a second at most (burst twice that); 0: MutationsPerS.
	Mutations float64
	Log       *slog.Logger
}

// Server serves the operators' view on one listener.
type Server struct {
	opt     Options
	hub     *hub
	hosts   *hostCheck
	srv     *http.Server
	ln      net.Listener
	token   [32]byte // sha256 of the token: compared in constant time, never kept in clear
	mutate  *rate.Limiter
	started time.Time
	done    chan struct{}
	once    sync.Once
}

// Limits: a mutating request's body, how many POSTs a second (burst 10), SSE clients
// at once and from one address (more make the oldest give way: hub.subscribe), and
// how long a write to a stream may wait for its reader. A line PC has one or two
// browsers open; these stop a runaway script, not a person.
const (
	MaxBody           = 4 << 10
	MutationsPerS     = 5
	MaxStreams        = 16
	MaxStreamsPerAddr = 8
	StreamWriteWait   = 10 * time.Second
	// streamSendBuffer is a stream socket's send buffer (the kernel doubles it). The
	// default grows to megabytes, which at a few KB a second would hide a reader that
	// stopped for many minutes; a stream needs little.
	streamSendBuffer = 32 << 10
)

// connKey is the request context's key to its connection (the stream sizes its
// socket's send buffer).
type connKey struct{}

// New builds the server without listening.
func New(opt Options) (*Server, error) {
	if opt.Address == "" {
		return nil, fmt.Errorf("%w: no address", ErrListen)
	}
	if opt.Pipeline == nil || opt.Line == nil {
		return nil, errors.New("http: pipeline and line are required")
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	perS := opt.Mutations
	if perS <= 0 {
		perS = MutationsPerS
	}
	s := &Server{opt: opt, mutate: rate.NewLimiter(rate.Limit(perS), int(2*perS)), started: time.Now(), done: make(chan struct{})}
	if opt.Token != "" {
		s.token = sha256.Sum256([]byte(opt.Token))
	}
	hosts, err := newHostCheck(opt.Address, opt.Hosts, opt.Log)
	if err != nil {
		return nil, err
	}
	s.hosts = hosts
	s.hub = newHub(opt.Pipeline, opt.Heatmaps)
	mux := http.NewServeMux()
	mux.Handle("GET /", staticFiles())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { text(w, http.StatusOK, "ok") })
	mux.HandleFunc("GET /readyz", s.readyz)
	if opt.Metrics != nil {
		mux.Handle("GET /metrics", opt.Metrics)
	}
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.status()) })
	mux.HandleFunc("GET /api/events", s.events)
	mux.HandleFunc("GET /api/stream", s.stream)
	mux.HandleFunc("GET /api/live.png", s.live)
	mux.HandleFunc("GET /api/recordings", s.recordings)
	mux.HandleFunc("GET /api/recordings/{id}/{file}", s.recordingFile)
	mux.Handle("POST /api/recordings/{id}/feedback", s.authorised(s.feedback))
	mux.Handle("POST /api/reload", s.authorised(s.reload))
	mux.Handle("POST /api/alarm/reset", s.authorised(s.alarmReset))
	s.srv = &http.Server{
		Handler:           securityHeaders(hosts.wrap(mux)),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(opt.Log.Handler(), slog.LevelWarn),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
	}
	return s, nil
}

// Start listens and serves in the background, and starts the hub.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.opt.Address)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrListen, err)
	}
	s.ln = ln
	s.hub.start()
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.opt.Log.Error("http: serve", "err", err)
		}
	}()
	return nil
}

// Addr is the address the server listens on (with the port chosen for :0).
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Dropped is how many bus events the page's hub missed.
func (s *Server) Dropped() uint64 { return s.hub.sub.Dropped() }

// Close stops serving (streams end, requests in progress get 2 s) and the hub.
// Safe twice and before Start.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		s.hub.close()
		if s.ln == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err = s.srv.Shutdown(ctx); err != nil {
			err = s.srv.Close()
		}
		<-s.done
	})
	return err
}

// authorised wraps a mutating handler: bearer token, body and rate bounds. The
// token's absence is 403 (mutations are off), a wrong one 401.
func (s *Server) authorised(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The rate comes first: it bounds guessing the token as well as mutations.
		if !s.mutate.Allow() {
			w.Header().Set("Retry-After", "1")
			problem(w, http.StatusTooManyRequests, "too many requests")
			return
		}
		if s.opt.Token == "" {
			problem(w, http.StatusForbidden, "mutations are off: set http.token_file in the config")
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], s.token[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="adtrd"`)
			problem(w, http.StatusUnauthorized, "a valid bearer token is required")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		h(w, r)
	})
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if why := s.notReady(); why != "" {
		text(w, http.StatusServiceUnavailable, why)
		return
	}
	text(w, http.StatusOK, "ready")
}

func (s *Server) notReady() string {
	p := s.opt.Pipeline
	select {
	case <-p.FirstFrame():
	default:
		return "no frame decided yet"
	}
	if at := p.CameraLost(); !at.IsZero() {
		return fmt.Sprintf("camera lost for %v", time.Since(at).Round(time.Second))
	}
	if s.opt.Line.Alarm() {
		return "alarm on"
	}
	return ""
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	if s.opt.Reloader == nil {
		problem(w, http.StatusNotImplemented, "no reloader")
		return
	}
	if err := s.opt.Reloader.Reload("http"); err != nil {
		problem(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"generation": s.opt.Pipeline.Running().N})
}

func (s *Server) alarmReset(w http.ResponseWriter, _ *http.Request) {
	s.opt.Line.ResetAlarm()
	s.opt.Log.Info("alarm reset requested over http")
	writeJSON(w, http.StatusOK, map[string]any{"alarm": "reset requested"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// problem is every error response: {"error": "..."} with the status.
func problem(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func text(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// securityHeaders: the page loads nothing from elsewhere (no CDN on a line PC) and
// runs no inline script, so a name that slipped through escaping still cannot run.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// staticFiles serves the page's embedded files by exact name ("/" is index.html) and
// answers 404 for every other path, whatever bytes it holds: a path that is not
// valid UTF-8 is a client's error, not the 500 that a file server's fs.ErrInvalid
// becomes. No directory listings, no redirects.
func staticFiles() http.Handler {
	type file struct {
		body []byte
		etag string
	}
	files := map[string]file{}
	ents, _ := fs.ReadDir(static, "static")
	for _, e := range ents {
		b, err := fs.ReadFile(static, "static/"+e.Name())
		if err != nil || e.IsDir() {
			continue
		}
		sum := sha256.Sum256(b)
		files["/"+e.Name()] = file{b, fmt.Sprintf(`"%x"`, sum[:8])}
	}
	files["/"] = files["/index.html"]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := files[r.URL.Path]
		if !ok {
			text(w, http.StatusNotFound, "not found")
			return
		}
		name := r.URL.Path
		if name == "/" {
			name = "index.html"
		}
		// no-cache: revalidated (by ETag) on each load, so a new build's page is never stale
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("ETag", f.etag)
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
	})
}
