package web_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/adtrd/adtrd/web"
)

// raw sends one request as written (method, target, Host header; host "" sends an
// HTTP/1.0 request with no Host at all) on a fresh connection from the loopback
// address from ("": any), and returns the status and up to 4 KiB of the body.
func raw(t *testing.T, addr, from, method, target, host string) (int, string) {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	req := method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\n"
	if host == "" {
		req = method + " " + target + " HTTP/1.0\r\n"
	}
	if method == "POST" {
		req += "Content-Length: 0\r\n"
	}
	fmt.Fprintf(c, "%sConnection: close\r\n\r\n", req)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %q (Host %q): %v", method, target, host, err)
	}
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		return resp.StatusCode, "" // a stream: its body never ends (the deferred Close ends it)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return resp.StatusCode, string(b)
}

// Every endpoint, the page and /metrics included, answers only requests whose Host
// names this server: what a DNS-rebinding page sends (its own name, with or without
// the port) gets 421 and one line saying what to do.
func TestHostHeaderIsChecked(t *testing.T) {
	s := serveWith(t, 0, false, func(o *web.Options) {
		o.Token = token
		o.Hosts = []string{"line-pc.plant.example", "10.9.8.7", "2001:db8::7"}
	})
	addr := s.srv.Addr()
	_, port, _ := net.SplitHostPort(addr)
	hn, err := os.Hostname()
	if err != nil || hn == "" {
		t.Fatalf("no host name: %v", err)
	}
	endpoints := []struct{ method, target string }{
		{"GET", "/"}, {"GET", "/app.js"}, {"GET", "/nonexistent"}, {"GET", "/healthz"}, {"GET", "/readyz"},
		{"GET", "/metrics"}, {"GET", "/api/status"}, {"GET", "/api/events?limit=1"}, {"GET", "/api/stream"},
		{"GET", "/api/live.png"}, {"GET", "/api/recordings?limit=1"}, {"GET", "/api/recordings/r1/frame.png"},
		{"POST", "/api/recordings/r1/feedback"}, {"POST", "/api/alarm/reset"}, {"POST", "/api/reload"},
	}
	for _, tc := range []struct {
		host string
		ok   bool
	}{
		{"127.0.0.1:" + port, true},                       // the listener's address and port, as the README's URL
		{"127.0.0.1", true},                               // without the port
		{"localhost:" + port, true},                       // the loopback name
		{"LocalHost.", true},                              // in any case, with the root's dot
		{"[::1]:" + port, true},                           // IPv6 loopback (a tunnel's)
		{"127.0.0.2:9000", true},                          // any loopback address, any port (ssh -L)
		{hn, true},                                        // the machine's host name
		{"line-pc.plant.example", true},                   // configured in http.hosts
		{"LINE-PC.plant.example.:8443", true},             // configured, behind a proxy's port
		{"10.9.8.7:80", true},                             // a configured address
		{"[2001:db8::7]", true},                           // a configured IPv6 address
		{"attacker.example", false},                       // DNS rebinding: the page's own name
		{"attacker.example:" + port, false},               // with the port the page was re-pointed to
		{"localhost.attacker.example", false},             // a name that starts like ours
		{"127.0.0.1.nip.io", false},                       // a public name that resolves to loopback
		{hn + ".attacker.example", false},                 // the host name as a prefix
		{"line-pc.plant.example.attacker.example", false}, // a configured name as a prefix
		{"10.9.8.8", false},                               // an address that is not this listener's
		{"[2001:db8::8]:" + port, false},                  // nor configured
		{"", false},                                       // no Host at all (HTTP/1.0)
	} {
		t.Run(tc.host, func(t *testing.T) {
			for _, e := range endpoints {
				code, body := raw(t, addr, "", e.method, e.target, tc.host)
				switch {
				case tc.ok && code == http.StatusMisdirectedRequest:
					t.Errorf("%s %s: refused: %s", e.method, e.target, body)
				case !tc.ok && (code != http.StatusMisdirectedRequest || !strings.Contains(body, "http.hosts") || strings.Count(strings.TrimSpace(body), "\n") > 0):
					t.Errorf("%s %s: %d %q, want 421 with one line naming http.hosts", e.method, e.target, code, body)
				}
			}
		})
	}
	// The refusals are counted where an operator looks.
	var st struct {
		HostsRefused uint64 `json:"hosts_refused"`
	}
	code, body := do(t, "GET", s.url+"/api/status", "", "")
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || st.HostsRefused != 9*uint64(len(endpoints)) {
		t.Fatalf("status: %d %s", code, body)
	}
}

// after= is an event id: the largest accepted id returns nothing (after+1 must not
// wrap to the oldest), one past it is refused.
func TestEventsAfterTheLargestID(t *testing.T) {
	s := serve(t, "", 0, false)
	s.line.Start(t)
	s.line.Wait(t)
	var last uint64
	for deadline := time.Now().Add(30 * time.Second); last < 16 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var page struct{ Events []web.Event }
		_, body := do(t, "GET", s.url+"/api/events?limit=512", "", "")
		json.Unmarshal([]byte(body), &page)
		if n := len(page.Events); n > 0 {
			last = page.Events[n-1].ID
		}
	}
	if last < 16 {
		t.Fatalf("the 16 demo decisions did not reach /api/events in 30 s (last id %d)", last)
	}
	for _, tc := range []struct {
		after string
		code  int
		n     int
	}{
		{"0", 200, int(last)},                            // no after: the most recent
		{fmt.Sprint(last - 1), 200, 1},                   // the last one
		{fmt.Sprint(last), 200, 0},                       // none newer
		{fmt.Sprint(uint64(math.MaxUint64 - 1)), 200, 0}, // far ahead
		{fmt.Sprint(uint64(math.MaxUint64)), 200, 0},     // the largest id: after+1 wraps to 0
		{"18446744073709551616", 400, 0},                 // not an id
	} {
		code, body := do(t, "GET", s.url+"/api/events?limit=512&after="+tc.after, "", "")
		var page struct{ Events []web.Event }
		if err := json.Unmarshal([]byte(body), &page); code != tc.code || (code == 200 && (err != nil || len(page.Events) != tc.n)) {
			t.Errorf("after=%s: %d %.200s, want %d with %d events", tc.after, code, body, tc.code, tc.n)
		}
		if code == 400 && !strings.Contains(body, "after: over 18446744073709551615") {
			t.Errorf("after=%s: %s", tc.after, body)
		}
	}
}

// What a scanner or a broken client sends is a client error (4xx), never a server
// fault (5xx), on every handler; the page's files are still served.
func TestJunkRequestsAreClientErrors(t *testing.T) {
	s := serve(t, token, 0, false, 1000)
	addr := s.srv.Addr()
	for _, target := range []string{
		"/%ff%fe",                        // not UTF-8 (the file server said 500)
		"/%ff",                           // a lone byte
		"/\xff\xfe",                      // not UTF-8, not escaped
		"/a%00b",                         // NUL
		"/%c0%af",                        // overlong '/'
		"/nonexistent",                   // no such file
		"/static/app.js",                 // the embed's folder is not a path
		"/index.html/",                   // a file as a folder
		"/..%2f..%2fetc%2fpasswd",        // traversal, escaped
		"/api/nonexistent",               // no such endpoint
		"/api/recordings/%ff/frame.png",  // a bad id
		"/api/recordings/r1/%ff",         // a bad file
		"/api/recordings/r1/..%2fx",      // a path as a file
		"/api/events?after=%ff",          // not a number
		"/api/events?after=-0",           // signed
		"/api/events?limit=%ff&kind=%ff", // neither
		"/api/events?after=1e3",          // not a whole number as written
		"/api/recordings?limit=99999999999999999999999", // over any int
		"/api/stream/%ff",             // below an endpoint
		"/metrics/%ff",                // below /metrics
		"/api/events?%ff=%fe&after=x", // junk query
	} {
		code, body := raw(t, addr, "", "GET", target, "127.0.0.1")
		if code < 400 || code >= 500 {
			t.Errorf("GET %q: %d %.120q, want a 4xx", target, code, body)
		}
	}
	for _, body := range []string{`{"label":"\xff"}`, `{"label":"defect","kind":"\xff\xfe"}`, "\xff\xfe", `{"label":"defect","kind":"` + strings.Repeat("é", 40) + `"}`} {
		code, got := do(t, "POST", s.url+"/api/recordings/r1/feedback", "Bearer "+token, body)
		if code >= 500 {
			t.Errorf("feedback %q: %d %s", body, code, got)
		}
	}
	// The page itself: exact names, revalidated by ETag.
	for _, tc := range []struct{ path, ctype string }{{"/", "text/html"}, {"/index.html", "text/html"}, {"/app.js", "text/javascript"}, {"/style.css", "text/css"}} {
		resp, err := http.Get(s.url + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		etag := resp.Header.Get("ETag")
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.ctype) || etag == "" || resp.Header.Get("Cache-Control") != "no-cache" {
			t.Fatalf("%s: %d %v", tc.path, resp.StatusCode, resp.Header)
		}
		req, _ := http.NewRequest("GET", s.url+tc.path, nil)
		req.Header.Set("If-None-Match", etag)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotModified {
			t.Fatalf("%s with its ETag: %d", tc.path, resp.StatusCode)
		}
	}
}

// sse is one stream read line by line.
type sse struct {
	c  net.Conn
	rd *bufio.Reader
}

// openStream opens /api/stream from the loopback address from and reads up to its
// first status message.
func openStream(t *testing.T, addr, from string) *sse {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET /api/stream HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream from %s: %v", from, err)
	}
	s := &sse{c: c, rd: bufio.NewReader(resp.Body)} // the body ends where the server ends the stream
	if !s.until(t, "event: status") {
		t.Fatalf("stream from %s: no status", from)
	}
	return s
}

// until reads the stream until a line starting with prefix (true) or its end.
func (s *sse) until(t *testing.T, prefix string) bool {
	t.Helper()
	s.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		line, err := s.rd.ReadString('\n')
		if err != nil {
			return false
		}
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
}

// A stream is never refused: a client holding as many streams as one address may
// have loses its oldest to its own next one, and with every stream taken the oldest
// of the busiest address gives way, saying why, so an operator always gets a live
// view whatever a script holds open.
func TestStreamsGiveWay(t *testing.T) {
	s := serve(t, "", 0, false)
	addr := s.srv.Addr()
	for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
		if c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).Dial("tcp", addr); err != nil {
			t.Skipf("cannot connect from %s (this machine's loopback is 127.0.0.1 only): %v", ip, err)
		} else {
			c.Close()
		}
	}
	streams := func() (open, closed int) {
		var st struct{ Streams, StreamsClosed int }
		_, body := do(t, "GET", s.url+"/api/status", "", "")
		json.Unmarshal([]byte(strings.ReplaceAll(body, "streams_closed", "StreamsClosed")), &st)
		return st.Streams, st.StreamsClosed
	}
	// A script at 127.0.0.2 opens one more than an address may hold.
	var script []*sse
	for range web.MaxStreamsPerAddr + 1 {
		script = append(script, openStream(t, addr, "127.0.0.2"))
	}
	if !script[0].until(t, `data: {"reason":"too many streams from one address`) {
		t.Fatal("the script's oldest stream was not closed with a reason")
	}
	if script[0].until(t, "event:") {
		t.Fatal("the closed stream goes on")
	}
	// Another script fills every other place.
	for range web.MaxStreams - web.MaxStreamsPerAddr {
		openStream(t, addr, "127.0.0.3")
	}
	if open, closed := streams(); open != web.MaxStreams || closed != 1 {
		t.Fatalf("%d streams open, %d closed; want %d and 1", open, closed, web.MaxStreams)
	}
	// The operator still gets a live view, and the scripts' tie (8 each) costs the
	// first address its oldest.
	op := openStream(t, addr, "127.0.0.1")
	if !script[1].until(t, `data: {"reason":"too many streams: the oldest of the busiest address gives way"}`) {
		t.Fatal("no stream gave way to the operator's")
	}
	if !op.until(t, "event: status") {
		t.Fatal("the operator's stream does not run")
	}
	if open, closed := streams(); open != web.MaxStreams || closed != 2 {
		t.Fatalf("%d streams open, %d closed; want %d and 2", open, closed, web.MaxStreams)
	}
}

// A client that opens a stream and stops reading is closed once its socket's buffers
// are full and it falls a queue behind (or a write waits too long), and no longer
// counts as a stream. (Its
// receive buffer is made small, as a busy client's is full, so that this takes
// seconds, not the minutes a large idle buffer absorbs.)
func TestStoppedReaderIsDropped(t *testing.T) {
	s := serve(t, "", 10, true)
	s.line.Start(t)
	d := net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		c.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return err
	}}
	c, err := d.Dial("tcp", s.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n") // and never read
	var st struct {
		Streams       int
		StreamsClosed int    `json:"streams_closed"`
		StreamDropped uint64 `json:"stream_dropped"`
	}
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		_, body := do(t, "GET", s.url+"/api/status", "", "")
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		if st.StreamsClosed > 0 && st.Streams == 0 {
			break
		}
	}
	// Closed when its queue overflowed (stream_dropped 1) or, on a machine too slow to
	// fill it in time, when a write waited StreamWriteWait (stream_dropped 0).
	if st.StreamsClosed != 1 || st.StreamDropped > 1 || st.Streams != 0 {
		t.Fatalf("after 2 minutes unread: %+v; want the stream closed as too slow", st)
	}
}
