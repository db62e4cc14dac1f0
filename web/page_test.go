package web_test

// TestPageInChromium drives the operators' page (web/static) in Debian's headless
// Chromium against a demo line running in this process: the real TFLite engine on a
// looping replay of the demo frames at 10 fps, a tracker on simulated pins, and two
// servers on that pipeline, one with recordings off (the rejects come from the stream)
// and one with a small fake recorder (thumbnails and feedback).

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/internal/demoline"
	"image"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/gpio"
	"github.com/adtrd/adtrd/heatmap"
	"github.com/adtrd/adtrd/internal/testlib"
	"github.com/adtrd/adtrd/model"
	"github.com/adtrd/adtrd/web"
)

var pageScreenshot = flag.Bool("screenshot", false, "TestPageInChromium: write docs/operators-page.png (as ADTRD_SCREENSHOT=1 does)")

const (
	pageToken = "a-test-token-0123456789"
	// pageEvilFrame is a replayed file whose name is HTML: the page must show it as
	// text (a file name cannot hold '/', so the tags are not closed).
	pageEvilFrame = "016_<b>bold<b><img src=x onerror=window.pwned=1>.png"
	// pageEvilRecording is a recording's frame name, which can hold anything.
	pageEvilRecording = `<b>bold</b><img src=x onerror="window.pwned=1">.png`
)

func TestPageInChromium(t *testing.T) {
	chrome := testlib.Tool(t, "chromium")
	line := startPageLine(t)
	plain := startPageServer(t, line, nil)
	recs := newPageRecordings(t, line.meta.Threshold)
	recorded := startPageServer(t, line, recs)
	b := startPageBrowser(t, chrome)
	begin := time.Now()

	// ---- recordings off: live frame, trend, rejects from the stream, escaping ----
	b.open(t, "http://"+plain.Addr()+"/")
	b.waitFor(t, "the stream connects", 10*time.Second, `document.getElementById('stream').textContent === 'connected'`)
	b.waitFor(t, "the status shows the camera up", 10*time.Second, `document.getElementById('camera').textContent === 'up'`)

	// 1. the live image is a real PNG, and a later message replaces it
	live := `(() => { const i = document.getElementById('live'); return i.complete && i.naturalWidth > 0 && i.src.includes('seq=') ? i.src : ''; })()`
	// The width is read with the src it belongs to: the next image may be loading a
	// moment later (naturalWidth 0 until it has).
	loaded := b.waitValue(t, "the live image loads", 10*time.Second,
		`(() => { const i = document.getElementById('live'); return i.complete && i.naturalWidth > 0 && i.src.includes('seq=') ? i.naturalWidth + ' ' + i.src : ''; })()`)
	w, first, _ := strings.Cut(loaded, " ")
	if w != "224" {
		t.Errorf("live image is %s px wide, want the model's 224", w)
	}
	b.waitFor(t, "the live image moves to a new seq", 10*time.Second,
		fmt.Sprintf(`(%s) !== '' && (%s) !== %s`, live, live, jsString(first)))
	checkLivePNG(t, plain.Addr())

	// 2. the trend is drawn and grows
	n0 := b.waitValue(t, "the trend has points", 10*time.Second,
		`(() => { const n = +document.getElementById('trend').dataset.points; return n > 0 ? String(n) : ''; })()`)
	b.waitFor(t, "the trend grows", 10*time.Second, `+document.getElementById('trend').dataset.points > `+n0)
	b.waitFor(t, "the trend shows rejects", 10*time.Second, `+document.getElementById('trend').dataset.rejects > 0`)

	// 3. a demo defect is listed as a reject, by its frame name
	frame := b.waitValue(t, "a demo defect in the rejects list", 15*time.Second, `(() => {
		for (const li of document.querySelectorAll('#rejects li')) {
			const f = li.querySelector('.frame');
			if (f && /^0\d\d_(scratch|stain|hole|cut_paste)\.png$/.test(f.textContent) && li.textContent.includes('score')) return f.textContent;
		}
		return ''; })()`)
	t.Logf("reject listed: %s", frame)

	// 4. a frame named with HTML is listed as that text and makes no element
	b.waitFor(t, "the HTML-named frame listed as text", 15*time.Second, fmt.Sprintf(
		`Array.from(document.querySelectorAll('#rejects .frame')).some((e) => e.textContent === %s)`, jsString(pageEvilFrame)))
	b.checkNoInjection(t)
	if got := b.eval(t, `document.getElementById('rejects-mode').textContent`); !strings.Contains(got, "recordings are off") {
		t.Errorf("rejects mode %q: want recordings off", got)
	}

	// the stream's health: the server goes, the page says so
	plain.Close()
	b.waitFor(t, "the page shows the stream down", 10*time.Second, `document.getElementById('stream').textContent.startsWith('disconnected')`)

	// ---- recordings on: thumbnails and feedback through the buttons ----
	b.open(t, "http://"+recorded.Addr()+"/")
	b.waitFor(t, "the recordings listed with their thumbnails", 15*time.Second, `(() => {
		const lis = document.querySelectorAll('#rejects li[data-recording]');
		if (lis.length !== 5) return false;
		for (const li of lis) { const i = li.querySelector('img'); if (!i || !i.complete || i.naturalWidth === 0) return false; }
		return true; })()`)
	entry := func(id string) string { return fmt.Sprintf(`#rejects li[data-recording="%s"]`, id) }

	// 5a. a wrong token: the page shows the 401 and the recorder gets nothing
	b.do(t, "type a wrong token",
		chromedp.SendKeys(chromedp.CSS("#token"), "not-the-token"),
		chromedp.Click(chromedp.CSS("#token-save")))
	b.waitFor(t, "the token is kept", 5*time.Second, `sessionStorage.getItem('adtrd.token') === 'not-the-token'`)
	b.do(t, "click true defect", chromedp.Click(chromedp.CSS(entry("r1")+" button.defect")))
	b.waitFor(t, "the 401 error line", 10*time.Second, fmt.Sprintf(
		`document.querySelector('%s .result').textContent.startsWith('HTTP 401: ')`, entry("r1")))
	if got := recs.feedback(); len(got) != 0 {
		t.Fatalf("feedback with a wrong token reached the recorder: %v", got)
	}

	// 5b. the right token: the label and the kind the operator typed reach the recorder
	b.do(t, "type the token",
		chromedp.Click(chromedp.CSS("#token-clear")),
		chromedp.SendKeys(chromedp.CSS("#token"), pageToken),
		chromedp.Click(chromedp.CSS("#token-save")))
	b.waitFor(t, "the token is kept", 5*time.Second, fmt.Sprintf(`sessionStorage.getItem('adtrd.token') === %s && localStorage.length === 0`, jsString(pageToken)))
	if v := b.eval(t, `document.getElementById('token').value`); v != `""` {
		t.Errorf("the token field still holds %s after use", v)
	}
	b.do(t, "label r1 a scratch",
		chromedp.Evaluate[chromedp.Void](`document.querySelector('`+entry("r1")+` input.kind').select()`), // typing replaces "defect"
		chromedp.SendKeys(chromedp.CSS(entry("r1")+" input.kind"), "scratch"),
		chromedp.Click(chromedp.CSS(entry("r1")+" button.defect")))
	b.waitFor(t, "r1 saved", 10*time.Second, fmt.Sprintf(`document.querySelector('%s .result').textContent.startsWith('saved')`, entry("r1")))
	b.do(t, "label r3 a false reject", chromedp.Click(chromedp.CSS(entry("r3")+" button.false-reject")))
	b.waitFor(t, "r3 saved", 10*time.Second, fmt.Sprintf(`document.querySelector('%s .result').textContent.startsWith('saved')`, entry("r3")))
	want := []pageFeedback{{"r1", "defect", "scratch"}, {"r3", "false_reject", ""}}
	if got := recs.feedback(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the recorder got %v, want %v", got, want)
	}
	b.waitFor(t, "r1 shows its label", 5*time.Second, fmt.Sprintf(`document.querySelector('%s .label').textContent === 'labelled: defect (scratch)'`, entry("r1")))
	b.do(t, "alarm reset", chromedp.Click(chromedp.CSS("#alarm-reset")))
	b.waitFor(t, "the alarm reset answered", 10*time.Second, `document.getElementById('action-result').textContent.startsWith('alarm reset requested')`)

	// 6. the screenshot (the README shows docs/operators-page.png)
	b.waitFor(t, "the page settled for the screenshot", 10*time.Second, `+document.getElementById('trend').dataset.points > 20 &&
		document.getElementById('live').naturalWidth > 0 && document.getElementById('stream').textContent === 'connected'`)
	shot := filepath.Join(t.TempDir(), "operators-page.png")
	if *pageScreenshot || os.Getenv("ADTRD_SCREENSHOT") == "1" {
		shot = filepath.Join(testlib.Root(), "docs", "operators-page.png")
		// The README's picture: let the trend gather 45 s of decisions first.
		b.waitFor(t, "45 s of trend for the screenshot", 90*time.Second, `+document.getElementById('trend').dataset.points >= 450`)
		b.waitFor(t, "a reject in the live frame", 20*time.Second, `document.getElementById('live-score').className === 'hot'`)
	}
	b.screenshot(t, shot)

	// usable on a tablet: nothing wider than the screen, either way up
	for _, vp := range [][2]int64{{1024, 768}, {768, 1024}} {
		b.do(t, "a tablet's viewport", chromedp.EmulateViewport(vp[0], vp[1]))
		b.waitFor(t, fmt.Sprintf("no horizontal scrolling at %dx%d", vp[0], vp[1]), 5*time.Second,
			`document.documentElement.scrollWidth <= window.innerWidth`)
	}
	b.do(t, "back to the line PC's viewport", chromedp.EmulateViewport(1600, 1000))

	// 4 again: a recording whose frame name is HTML
	recs.add(pageRecording{Recording: web.Recording{ID: "r-evil", Time: time.Now(), Seq: 9999, Part: 9999, Frame: pageEvilRecording,
		Score: 30, Threshold: line.meta.Threshold, Decision: "reject"}, src: "005_hole.png"})
	b.waitFor(t, "the HTML-named recording listed as text", 15*time.Second, fmt.Sprintf(
		`Array.from(document.querySelectorAll('#rejects .frame')).some((e) => e.textContent === %s)`, jsString(pageEvilRecording)))
	b.checkNoInjection(t)

	b.checkClean(t, plain.Addr(), recorded.Addr())
	t.Logf("page checks took %v", time.Since(begin).Round(time.Millisecond))
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// checkLivePNG: /api/live.png is a PNG of the model's input size, with its seq.
func checkLivePNG(t *testing.T, addr string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/api/live.png")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/png" || resp.Header.Get("X-Frame-Seq") == "" {
		t.Fatalf("live.png: %s %q seq %q", resp.Status, resp.Header.Get("Content-Type"), resp.Header.Get("X-Frame-Seq"))
	}
	img, err := png.Decode(bytes.NewReader(body))
	if err != nil || img.Bounds().Dx() != 224 {
		t.Fatalf("live.png: %v, %v", err, img)
	}
}

// ---- the demo line ----

type pageLine struct {
	p    *daemon.Pipeline
	tr   *gpio.Tracker
	meta *model.Metadata
}

// startPageLine runs the demo model on a looping replay of the demo frames (and one
// frame named with HTML) at 10 fps into a tracker on simulated pins, until the test
// ends.
func startPageLine(t *testing.T) *pageLine {
	t.Helper()
	dir := t.TempDir()
	ents, err := os.ReadDir(testlib.Demo("frames"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".png") {
			copyFile(t, testlib.Demo("frames", e.Name()), filepath.Join(dir, e.Name()))
		}
	}
	copyFile(t, testlib.Demo("frames", "007_cut_paste.png"), filepath.Join(dir, pageEvilFrame)) // a defect: rejected
	l := demoline.New(t, demoline.Options{Frames: dir, Loop: true, FPS: 10})
	l.Start(t)
	return &pageLine{p: l.Pipeline, tr: l.Tracker, meta: l.Gen.Meta}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// pageReloader stands in for the daemon's reloader: every reload changes nothing.
type pageReloader struct {
	mu sync.Mutex
	st events.ReloadStatus
}

func (r *pageReloader) Reload(string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.Unchanged++
	return nil
}

func (r *pageReloader) Status() events.ReloadStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

func startPageServer(t *testing.T, line *pageLine, recs web.Recordings) *web.Server {
	t.Helper()
	srv, err := web.New(web.Options{
		Address: "127.0.0.1:0", Token: pageToken, Heatmaps: 4, Version: "test",
		Pipeline: line.p, Line: line.tr, Reloader: &pageReloader{}, Recordings: recs,
		Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// ---- a fake recorder ----

type pageRecording struct {
	web.Recording
	src string // the demo frame it shows
}

type pageFeedback struct{ ID, Label, Kind string }

// pageRecordings serves recordings of demo frames from a temp dir: frame.png (the
// model input), overlay.png (its golden anomaly map drawn by package heatmap) and
// meta.json; Feedback notes what it is told.
type pageRecordings struct {
	t         *testing.T
	dir       string
	threshold float64
	golden    map[string][]float32

	mu   sync.Mutex
	recs []web.Recording
	got  []pageFeedback
}

func newPageRecordings(t *testing.T, threshold float64) *pageRecordings {
	t.Helper()
	g := testlib.LoadGolden(t)
	r := &pageRecordings{t: t, dir: t.TempDir(), threshold: threshold, golden: map[string][]float32{}}
	for _, f := range g.Frames {
		grid := make([]float32, len(f.Map))
		for i, q := range f.Map {
			grid[i] = float32(g.Output.Scale * float64(int32(q)-g.Output.ZeroPoint))
		}
		r.golden[f.File] = grid
	}
	now := time.Now()
	for i, f := range []struct {
		name, decision string
		ago            time.Duration
	}{
		{"001_scratch.png", "reject", 50 * time.Second}, {"002_good.png", "pass", 41 * time.Second},
		{"005_hole.png", "reject", 33 * time.Second}, {"011_stain.png", "reject", 18 * time.Second},
		{"013_hole.png", "reject", 4 * time.Second},
	} {
		score := 0.0
		for _, gf := range g.Frames {
			if gf.File == f.name {
				score = gf.Score
			}
		}
		seq := uint64(1000 + 17*i)
		r.add(pageRecording{Recording: web.Recording{
			ID: fmt.Sprintf("r%d", i+1), Time: now.Add(-f.ago), Seq: seq, Part: seq, Frame: f.name,
			Score: events.Round4(score), Threshold: events.Round4(threshold), Decision: f.decision,
		}, src: f.name})
	}
	return r
}

// add writes a recording's files and lists it.
func (r *pageRecordings) add(rec pageRecording) {
	t := r.t
	dir := filepath.Join(r.dir, rec.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	px, err := capture.LoadRGB(testlib.Demo("frames", rec.src), capture.Size{W: 224, H: 224}, capture.FitResize)
	if err != nil {
		t.Fatal(err)
	}
	frame := image.NewRGBA(image.Rect(0, 0, 224, 224))
	for i := 0; i < 224*224; i++ {
		copy(frame.Pix[4*i:], px[3*i:3*i+3])
		frame.Pix[4*i+3] = 255
	}
	overlay := image.NewRGBA(image.Rect(0, 0, 224, 224))
	if err := heatmap.Overlay(overlay, px, 224, r.golden[rec.src], 14, r.threshold); err != nil {
		t.Fatal(err)
	}
	for name, img := range map[string]image.Image{"frame.png": frame, "overlay.png": overlay} {
		var b bytes.Buffer
		png.Encode(&b, img)
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	meta, _ := json.Marshal(rec.Recording)
	os.WriteFile(filepath.Join(dir, "meta.json"), meta, 0o644)
	r.mu.Lock()
	r.recs = append(r.recs, rec.Recording)
	r.mu.Unlock()
}

func (r *pageRecordings) Recent(n int) []web.Recording {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]web.Recording(nil), r.recs...)
	sort.Slice(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	return out[:min(n, len(out))]
}

func (r *pageRecordings) find(id string) int {
	for i, rec := range r.recs {
		if rec.ID == id {
			return i
		}
	}
	return -1
}

func (r *pageRecordings) Path(id, file string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch file {
	case "frame.png", "overlay.png", "meta.json":
	default:
		return "", web.ErrNotFound
	}
	if r.find(id) < 0 {
		return "", web.ErrNotFound
	}
	return filepath.Join(r.dir, id, file), nil
}

func (r *pageRecordings) Feedback(id, label, kind string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := r.find(id)
	if i < 0 {
		return "", web.ErrNotFound
	}
	switch {
	case label == "defect" && kind != "":
	case label == "false_reject" && kind == "":
	default:
		return "", fmt.Errorf("%w: label %q kind %q", web.ErrBadRequest, label, kind)
	}
	r.got = append(r.got, pageFeedback{id, label, kind})
	r.recs[i].Label, r.recs[i].Kind = label, kind
	if label == "false_reject" { // where record.Recorder puts them
		return filepath.Join("dataset", "train", "good", id+".png"), nil
	}
	return filepath.Join("dataset", "test", kind, id+".png"), nil
}

func (r *pageRecordings) Stats() map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	labelled := 0
	for _, rec := range r.recs {
		if rec.Label != "" {
			labelled++
		}
	}
	// the shape of cmd/adtrd's account of record.Recorder
	return map[string]any{"recorded": len(r.recs), "count": len(r.recs), "bytes": 61 << 10 * len(r.recs), "removed": 0,
		"labelled": labelled, "dropped": map[string]uint64{"rate": 0, "bus": 0, "write": 0}}
}

func (r *pageRecordings) feedback() []pageFeedback {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]pageFeedback(nil), r.got...)
}

// ---- the browser ----

type pageBrowser struct {
	ctx context.Context // the tab

	mu         sync.Mutex
	requests   []string // every URL the tab asked for
	exceptions []string // uncaught script errors
	console    []string // console errors and warnings (CSP reports land here too)
	log        *bytes.Buffer
}

// pageWatch records the CSP violations in the page itself (it runs before the page's
// own script, outside its CSP).
const pageWatch = `window.__csp = []; document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile + ':' + e.lineNumber));`

func startPageBrowser(t *testing.T, chrome string) *pageBrowser {
	t.Helper()
	b := &pageBrowser{log: &bytes.Buffer{}}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1600, 1000),
		chromedp.DisableGPU,
		chromedp.Flag("hide-scrollbars", true),
		chromedp.CombinedOutput(&lockedWriter{mu: &b.mu, w: b.log}),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium's sandbox refuses root
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		chromedp.Cancel(ctx)
		cancelTab()
		cancelAlloc()
		if t.Failed() {
			b.mu.Lock()
			t.Logf("chromium's output:\n%s", b.log.String())
			b.mu.Unlock()
		}
	})
	// The first call starts the browser and the tab, and binds the browser's life to
	// its context: ctx itself, not one with a timeout.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("chromium: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("chromium did not start within 30 s")
	}
	b.ctx = ctx
	go func() {
		for ev, err := range chromedp.Events(ctx, network.RequestWillBeSent) {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.requests = append(b.requests, ev.Request.URL)
			b.mu.Unlock()
		}
	}()
	go func() {
		for ev, err := range chromedp.Events(ctx, runtime.ExceptionThrown) {
			if err != nil {
				return
			}
			msg := ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
			b.mu.Lock()
			b.exceptions = append(b.exceptions, fmt.Sprintf("%s (%s:%d)", msg, ev.ExceptionDetails.URL, ev.ExceptionDetails.LineNumber))
			b.mu.Unlock()
		}
	}()
	go func() {
		for ev, err := range chromedp.Events(ctx, runtime.ConsoleAPICalled) {
			if err != nil {
				return
			}
			if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeWarning {
				continue
			}
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			b.mu.Lock()
			b.console = append(b.console, string(ev.Type)+": "+strings.Join(args, " "))
			b.mu.Unlock()
		}
	}()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: pageWatch}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1600, 1000)); err != nil {
		t.Fatal(err)
	}
	return b
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (b *pageBrowser) open(t *testing.T, u string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(u), chromedp.WaitReady(chromedp.CSS("#grid"))); err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
}

func (b *pageBrowser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, b.state(t))
	}
}

// eval is the JSON of expr's value.
func (b *pageBrowser) eval(t *testing.T, expr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return string(v)
}

// waitValue polls expr (a string) until it is not empty and returns it; a throw
// counts as empty. The test fails at the timeout, saying what the page shows.
func (b *pageBrowser) waitValue(t *testing.T, what string, timeout time.Duration, expr string) string {
	t.Helper()
	js := `(() => { try { const v = (` + expr + `); return v ? String(v) : ''; } catch (e) { return ''; } })()`
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		cancel()
		if err == nil && v != "" {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v (last error %v)\n%s", what, timeout, err, b.state(t))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (b *pageBrowser) waitFor(t *testing.T, what string, timeout time.Duration, cond string) {
	t.Helper()
	b.waitValue(t, what, timeout, `(`+cond+`) ? 'yes' : ''`)
}

// state is what the page shows, for a failure's message.
func (b *pageBrowser) state(t *testing.T) string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		const txt = (id) => { const e = document.getElementById(id); return e ? e.textContent.replace(/\s+/g, ' ').trim().slice(0, 600) : '(none)'; };
		const live = document.getElementById('live');
		return ['stream: ' + txt('stream'), 'camera: ' + txt('camera'), 'live: ' + (live && live.src) + ' ' + (live && live.naturalWidth),
			'trend points: ' + document.getElementById('trend').dataset.points, 'rejects: ' + txt('rejects'), 'faults: ' + txt('faults'),
			'action: ' + txt('action-result')].join('\n'); })()`))
	if err != nil {
		return "page state: " + err.Error()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return v + "\nexceptions: " + strings.Join(b.exceptions, "; ") + "\nconsole: " + strings.Join(b.console, "; ")
}

// checkNoInjection: the HTML in the names made no element and ran nothing.
func (b *pageBrowser) checkNoInjection(t *testing.T) {
	t.Helper()
	if got := b.eval(t, `[document.querySelectorAll('b').length, document.querySelectorAll('img[src="x"]').length, typeof window.pwned]`); got != `[0,0,"undefined"]` {
		t.Fatalf("a frame name's HTML became part of the page: <b> elements, img src=x elements, window.pwned: %s", got)
	}
}

// checkClean: nothing was fetched from anywhere but the two servers, no script
// failed and nothing broke the Content-Security-Policy.
func (b *pageBrowser) checkClean(t *testing.T, addrs ...string) {
	t.Helper()
	if got := b.eval(t, `window.__csp`); got != "[]" {
		t.Errorf("Content-Security-Policy violations: %s", got)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, u := range b.requests {
		pu, err := url.Parse(u)
		if err != nil || pu.Scheme != "http" || !contains(addrs, pu.Host) {
			if u != "about:blank" {
				t.Errorf("the page fetched %s: only its own server is allowed", u)
			}
		}
	}
	if len(b.requests) == 0 {
		t.Error("no requests seen: the network events are not reaching the test")
	}
	for _, e := range b.exceptions {
		t.Errorf("script error: %s", e)
	}
	for _, c := range b.console {
		t.Errorf("console: %s", c)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (b *pageBrowser) screenshot(t *testing.T, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	img, err := png.DecodeConfig(bytes.NewReader(buf))
	if err != nil || img.Width < 600 || img.Height < 600 {
		t.Fatalf("screenshot: %v, %dx%d", err, img.Width, img.Height)
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %dx%d: %s", img.Width, img.Height, path)
}
