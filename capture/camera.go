package capture

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/adtrd/adtrd/capture/spec"
	proc "github.com/adtrd/adtrd/internal/child"
)

// CameraOptions configure a camera source: a supervised gst-launch-1.0 child whose
// stdout carries Spec.Width x Spec.Height RGB frames.
type CameraOptions struct {
	Spec spec.CameraSpec
	// Size is the model's input; frames of another size are resized as files are
	// (resizePillow, the toolkit's resize), so a camera frame and its PNG give the
	// same input bytes.
	Size Size
	// Latency is subtracted from a frame's arrival time to give its capture time: the
	// exposure-to-pipe delay of this camera and transport, measured or guessed.
	Latency time.Duration
	// Stall: no frame for this long is a lost camera; FirstFrame is the allowance after
	// a (re)start, when an RTSP or GigE Vision connection is still being set up.
	Stall, FirstFrame time.Duration
	// Backoff between restarts doubles from BackoffMin up to BackoffMax, and starts
	// again from BackoffMin once frames flow.
	BackoffMin, BackoffMax time.Duration
	// Buffers is the frame pool (frames held by the pipeline at once, plus one being read).
	Buffers int
	// Launch is the gst-launch-1.0 to run; "" finds it on PATH.
	Launch string
	// Triggered: the camera sends frames only when the line triggers it (CheckCamera
	// then passes one that sends none in its few seconds).
	Triggered bool
	Log       *slog.Logger
}

// CameraStats are a camera source's counters.
type CameraStats struct {
	Frames, Dropped  uint64 // delivered; read but dropped (every buffer held)
	Losses, Restarts uint64
	Up               bool
}

// Camera is a frame source fed by a GStreamer child process. A supervisor goroutine
// starts the child, reads whole frames into a fixed pool and, when the child exits,
// the pipe closes, GStreamer reports an error or no frame comes within the stall
// time, declares the camera lost, kills the child's process group, reaps it and
// starts a new one after a capped exponential backoff. Next returns ErrLost while the
// camera is down; a lost camera never ends the stream. Only a pipeline GStreamer
// cannot parse (a syntax error, an unknown element) ends it, since no restart helps.
type Camera struct {
	opt    CameraOptions
	args   []string
	launch string
	log    *slog.Logger
	pool   *Pool
	frames chan Frame
	lostCh chan struct{}
	stop   context.CancelFunc
	done   chan struct{}

	up, down  atomic.Bool  // frames flowing; lost (and not yet back)
	lastFrame atomic.Int64 // arrival of the last frame, Unix ns
	seq       atomic.Uint64
	mu        sync.Mutex
	reason    error // why the camera is down, or the fatal error
	fatal     bool
	stats     CameraStats
	child     *os.Process // the running child, for tests
	closing   sync.Once
	closed    atomic.Bool
}

// Defaults for CameraOptions' zero values.
const (
	DefaultStall      = spec.DefaultStall
	DefaultFirstFrame = 10 * time.Second
	DefaultBackoffMin = 500 * time.Millisecond
	DefaultBackoffMax = 30 * time.Second
	DefaultBuffers    = 4
)

// NewCamera checks the options, finds gst-launch-1.0 and starts the supervisor; the
// first frame comes through Next.
func NewCamera(opt CameraOptions) (*Camera, error) {
	args, err := opt.Spec.Args()
	if err != nil {
		return nil, err
	}
	if opt.Size.W < 1 || opt.Size.H < 1 {
		return nil, fmt.Errorf("%w: model input %dx%d", ErrSource, opt.Size.W, opt.Size.H)
	}
	opt.Stall = orDefault(opt.Stall, DefaultStall)
	opt.FirstFrame = orDefault(opt.FirstFrame, DefaultFirstFrame)
	opt.BackoffMin = orDefault(opt.BackoffMin, DefaultBackoffMin)
	opt.BackoffMax = max(orDefault(opt.BackoffMax, DefaultBackoffMax), opt.BackoffMin)
	if opt.Buffers == 0 {
		opt.Buffers = DefaultBuffers
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	launch := opt.Launch
	if launch == "" {
		launch = "gst-launch-1.0"
	}
	path, err := exec.LookPath(launch)
	if err != nil {
		return nil, fmt.Errorf("%w: %s not found (Debian: apt install gstreamer1.0-tools): %v", ErrSource, launch, err)
	}
	pool, err := NewPool(opt.Buffers, opt.Size.W*opt.Size.H*3)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Camera{opt: opt, args: args, launch: path, log: opt.Log, pool: pool,
		frames: make(chan Frame, opt.Buffers), lostCh: make(chan struct{}, 1), stop: cancel, done: make(chan struct{})}
	go c.supervise(ctx)
	return c, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Args is the child's argument list (after gst-launch-1.0).
func (c *Camera) Args() []string { return c.args }

// Paced: a camera runs at its own rate; frames are dropped when the pipeline is behind.
func (c *Camera) Paced() bool { return true }

// Len is 0: a camera has no end.
func (c *Camera) Len() int { return 0 }

// Stats returns a copy of the counters.
func (c *Camera) Stats() CameraStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Up = c.up.Load()
	return s
}

// Next returns the next frame; ErrLost (wrapped, with the reason) while the camera is
// down; the fatal error once the pipeline cannot run at all; ErrClosed after Close.
func (c *Camera) Next(ctx context.Context) (Frame, error) {
	if c.closed.Load() {
		return Frame{}, ErrClosed // frames still queued from before Close are not handed out
	}
	select {
	case f := <-c.frames:
		return f, nil
	default:
	}
	if err := c.downErr(); err != nil {
		return Frame{}, err
	}
	select {
	case f := <-c.frames:
		return f, nil
	case <-c.lostCh:
		// Frames the child sent before it was lost come first: select picks at random
		// when a frame and the loss are both waiting, and a stale frame after the loss
		// would read as the camera back and then lost again.
		select {
		case f := <-c.frames:
			return f, nil
		default:
		}
		if err := c.downErr(); err != nil {
			return Frame{}, err
		}
		return c.Next(ctx)
	case <-ctx.Done():
		return Frame{}, ctx.Err()
	case <-c.done:
		if err := c.downErr(); err != nil {
			return Frame{}, err
		}
		return Frame{}, ErrClosed
	}
}

func (c *Camera) downErr() error {
	if !c.down.Load() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fatal {
		return c.reason
	}
	if c.closed.Load() {
		return ErrClosed
	}
	return fmt.Errorf("%w: %v", ErrLost, c.reason)
}

// Dropped is how many frames the camera read and dropped because every frame buffer
// was held (the pipeline behind); the daemon's summary and metrics report it.
func (c *Camera) Dropped() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats.Dropped
}

// Close stops the supervisor, kills the child and waits for both; safe twice.
func (c *Camera) Close() error {
	c.closing.Do(func() {
		c.closed.Store(true)
		c.stop()
		<-c.done
	})
	return nil
}

// Child is the running child's process, nil between children (tests kill and stop it).
func (c *Camera) Child() *os.Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.child
}

// supervise runs children until Close or a fatal error, with backoff between them.
func (c *Camera) supervise(ctx context.Context) {
	defer close(c.done)
	backoff := c.opt.BackoffMin
	var lostAt time.Time
	for {
		start := time.Now()
		frames, err := c.runChild(ctx, lostAt)
		if ctx.Err() != nil {
			return
		}
		if frames > 0 {
			backoff = c.opt.BackoffMin
		}
		var fe *fatalError
		if errors.As(err, &fe) {
			c.setDown(err, true)
			c.log.Error("camera pipeline cannot run: stopping the source", "err", err)
			return
		}
		if frames > 0 || lostAt.IsZero() {
			// The outage counts from the last frame, not from when the loss was seen
			// (a stall is seen only after the stall time).
			lostAt = time.Now()
			if last := c.lastFrame.Load(); last != 0 {
				lostAt = time.Unix(0, last)
			}
			c.mu.Lock()
			c.stats.Losses++
			c.mu.Unlock()
			c.log.Error("camera lost", "err", err, "up_for", time.Since(start).Round(time.Millisecond), "retry_in", backoff)
		} else {
			c.log.Warn("camera still lost", "err", err, "down_for", time.Since(lostAt).Round(time.Millisecond), "retry_in", backoff)
		}
		c.setDown(err, false)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, c.opt.BackoffMax)
		c.mu.Lock()
		c.stats.Restarts++
		c.mu.Unlock()
	}
}

func (c *Camera) setDown(err error, fatal bool) {
	c.mu.Lock()
	c.reason, c.fatal = err, fatal
	c.mu.Unlock()
	c.up.Store(false)
	c.down.Store(true)
	select {
	case c.lostCh <- struct{}{}:
	default:
	}
}

// fatalError is a pipeline GStreamer refuses to build: restarting cannot help.
type fatalError struct{ msg string }

func (e *fatalError) Error() string { return e.msg }
func (e *fatalError) Unwrap() error { return ErrSource }

// sourceError is an ErrSource whose message names the config key itself.
type sourceError struct{ msg string }

func (e *sourceError) Error() string { return e.msg }
func (e *sourceError) Unwrap() error { return ErrSource }

// child is one running gst-launch-1.0 (a child.Process): frames on their own pipe
// (descriptor spec.FrameFD in the child), its stdout and stderr into the bounded log, so
// that nothing an element prints can reach the frames.
type child struct {
	proc   *proc.Process
	frames *os.File
	logs   *childLog
}

func startChild(launch string, args []string, log *slog.Logger) (*child, error) {
	fr, fw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("frame pipe: %w", err)
	}
	extra := make([]*os.File, spec.FrameFD-2) // ExtraFiles[i] is the child's descriptor 3+i
	extra[spec.FrameFD-3] = fw
	logs := newChildLog(log)
	p, err := proc.Start(proc.Options{Path: launch, Args: args, Env: append(os.Environ(), "GST_DEBUG_NO_COLOR=1"), ExtraFiles: extra, Line: logs.add})
	if err != nil {
		fr.Close()
		return nil, err
	}
	return &child{proc: p, frames: fr, logs: logs}, nil
}

// stopGrace is how long an interrupted child gets to hand its camera back before
// its process group is killed. A gst-launch-1.0 with aravissrc stops in under 0.1 s
// here; the margin is for a machine whose cores are busy.
const stopGrace = 3 * time.Second

// stop interrupts the child (its pipeline goes to NULL and releases the camera),
// kills its process group after stopGrace or once it exited (whatever it forked),
// reaps it and closes its pipes once the log has read what the child printed.
func (ch *child) stop() error {
	// The frames are read and dropped meanwhile: a sink blocked writing into a full
	// pipe holds its streaming thread, and the pipeline could not reach NULL.
	ch.frames.SetReadDeadline(time.Time{})
	drained := make(chan struct{})
	go func() { io.Copy(io.Discard, ch.frames); close(drained) }()
	defer func() { <-drained }()
	err := ch.proc.Stop(stopGrace)
	ch.frames.Close()
	if errors.Is(err, proc.ErrKilled) {
		ch.logs.log.Warn("camera: gst-launch-1.0 did not stop when interrupted and was killed; a GigE Vision camera stays held until its heartbeat timeout (a few seconds)", "err", err)
	}
	return err
}

// runChild runs one child until it fails, and says how many frames it delivered.
func (c *Camera) runChild(ctx context.Context, lostAt time.Time) (uint64, error) {
	ch, err := startChild(c.launch, c.args, c.log)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	c.child = ch.proc.Process()
	c.mu.Unlock()
	// A stop or Close interrupts a read that would wait for the stall deadline.
	stopRead := context.AfterFunc(ctx, func() { ch.frames.SetReadDeadline(time.Now()) })
	n, readErr := c.readFrames(ctx, ch.frames, lostAt)
	stopRead()
	waitErr := ch.stop()
	c.mu.Lock()
	c.child = nil
	c.mu.Unlock()
	var se *streamError
	if line := ch.logs.lastError(); n == 0 && parseError(line) {
		return 0, &fatalError{msg: fmt.Sprintf("capture: camera: gst-launch-1.0: %s", trimLevel(line))}
	} else if errors.As(readErr, &se) {
		return n, readErr // the frames themselves are wrong: that says more than how the child ended
	} else if line != "" {
		return n, fmt.Errorf("%v (%s)", readErr, line)
	}
	if errors.Is(readErr, io.EOF) || errors.Is(readErr, io.ErrUnexpectedEOF) {
		return n, fmt.Errorf("gst-launch-1.0 exited (%v)", waitErr)
	}
	return n, readErr
}

// parseError: GStreamer could not build the pipeline from its description (a syntax
// error, an unknown element or property, elements or caps that cannot link).
func parseError(line string) bool {
	return strings.Contains(line, "erroneous pipeline") || strings.Contains(line, "could not be constructed")
}

// negotiationError: the pipeline was built but its elements could not agree on a
// format once data flowed (a decodebin output that fits no tail, a camera that has
// no mode with these caps, or that refuses a setting: aravissrc's "Could not set
// caps" with a GenICam feature value the camera does not have).
func negotiationError(line string) bool {
	return strings.Contains(line, "reason not-linked") || strings.Contains(line, "reason not-negotiated") ||
		strings.Contains(line, "Could not set caps")
}

func trimLevel(line string) string {
	return strings.TrimPrefix(strings.TrimPrefix(line, "WARNING: "), "ERROR: ")
}

// readFrames reads whole frames until the pipe fails or stalls.
func (c *Camera) readFrames(ctx context.Context, out *os.File, lostAt time.Time) (uint64, error) {
	w, h := c.opt.Spec.Width, c.opt.Spec.Height
	resize := w != c.opt.Size.W || h != c.opt.Size.H
	var raw, discard []byte
	if resize {
		raw = make([]byte, w*h*3)
	}
	rs := newResizer(w, h, c.opt.Size.W, c.opt.Size.H)
	fr := newFrameReader(out, w, h)
	var n uint64
	wait := c.opt.FirstFrame
	for {
		out.SetReadDeadline(time.Now().Add(wait))
		// After the deadline is set: a stop that came before it set its own deadline
		// (context.AfterFunc in runChild), which this one has just replaced.
		if err := ctx.Err(); err != nil {
			return n, err
		}
		buf, idx, ok := c.pool.Get()
		dst := buf
		switch {
		case resize:
			dst = raw
		case !ok:
			if discard == nil {
				discard = make([]byte, w*h*3)
			}
			dst = discard
		}
		if err := fr.read(dst); err != nil {
			if ok {
				c.pool.Put(idx)
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if n == 0 {
					return n, fmt.Errorf("no frame within %v of the start", wait)
				}
				return n, fmt.Errorf("no frame for %v (stalled)", wait)
			}
			return n, err
		}
		now := time.Now()
		c.lastFrame.Store(now.UnixNano())
		at := now.Add(-c.opt.Latency)
		if !ok {
			c.mu.Lock()
			c.stats.Dropped++
			c.mu.Unlock()
			continue
		}
		if resize {
			rs.resize(raw, buf)
		}
		if n == 0 {
			if c.down.Load() && !lostAt.IsZero() {
				c.log.Info("camera back", "outage", time.Since(lostAt).Round(time.Millisecond))
			}
			c.down.Store(false)
			c.up.Store(true)
			wait = c.opt.Stall
		}
		n++
		c.mu.Lock()
		c.stats.Frames++
		c.mu.Unlock()
		c.frames <- c.pool.Frame(idx, Frame{Seq: c.seq.Add(1), Time: at, Name: "camera"})
	}
}

// frameReader reads the tail's frame stream: multipartmux's parts, each a header
// with the buffer's size, the buffer and CRLF. A buffer is taken in GStreamer's two
// layouts of a W x H RGB frame, rows of W*3 bytes or rows padded to 4 bytes (its
// default stride; the padding is dropped); any other size is an error, never pixels.
type frameReader struct {
	r                 *bufio.Reader
	w, h, row, stride int
}

func newFrameReader(r io.Reader, w, h int) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 64<<10), w: w, h: h, row: 3 * w, stride: (3*w + 3) &^ 3}
}

// streamError: the frame stream is not W x H RGB frames in adtrd's framing.
type streamError struct{ msg string }

func (e *streamError) Error() string { return e.msg }

// read reads the next frame into dst (W*H*3 bytes).
func (f *frameReader) read(dst []byte) error {
	n, err := f.header()
	if err != nil {
		return err
	}
	switch n {
	case f.row * f.h:
		if _, err := io.ReadFull(f.r, dst[:n]); err != nil {
			return err
		}
	case f.stride * f.h:
		for y := range f.h {
			if _, err := io.ReadFull(f.r, dst[y*f.row:(y+1)*f.row]); err != nil {
				return err
			}
			if _, err := f.r.Discard(f.stride - f.row); err != nil {
				return err
			}
		}
	default:
		msg := fmt.Sprintf("camera frame of %d bytes: a %dx%d RGB frame is %d", n, f.w, f.h, f.row*f.h)
		if f.stride != f.row {
			msg += fmt.Sprintf(" (%d with rows padded to 4 bytes)", f.stride*f.h)
		}
		return &streamError{msg + ": the pipeline does not deliver the configured frame"}
	}
	cr, err := f.r.ReadByte()
	if err != nil {
		return err
	}
	lf, err := f.r.ReadByte()
	if err != nil {
		return err
	}
	if cr != '\r' || lf != '\n' {
		return &streamError{"camera frame stream: no CRLF after a frame (not multipartmux's framing)"}
	}
	return nil
}

// header reads one part's header and returns its Content-Length.
func (f *frameReader) header() (int, error) {
	line, err := f.line()
	if err != nil {
		return 0, err
	}
	if string(line) != "--"+spec.FrameBoundary {
		return 0, &streamError{fmt.Sprintf("camera frame stream: %.40q where a frame's boundary --%s belongs", line, spec.FrameBoundary)}
	}
	n, video := -1, false
	for i := 0; ; i++ {
		line, err := f.line()
		if err != nil {
			return 0, err
		}
		if len(line) == 0 {
			break
		}
		if i == 16 {
			return 0, &streamError{"camera frame stream: more than 16 header lines in a frame"}
		}
		k, v, _ := bytes.Cut(line, []byte(": "))
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if n = atoi(v); n < 0 {
				return 0, &streamError{fmt.Sprintf("camera frame stream: Content-Length %.40q", v)}
			}
		case bytes.EqualFold(k, []byte("Content-Type")):
			if string(v) != "video/x-raw" {
				return 0, &streamError{fmt.Sprintf("camera frame stream: a frame of type %.40q, want video/x-raw", v)}
			}
			video = true
		}
	}
	if n < 0 || !video {
		return 0, &streamError{"camera frame stream: a frame without Content-Length and Content-Type video/x-raw"}
	}
	return n, nil
}

// line reads one CRLF-ended header line, without its CRLF.
func (f *frameReader) line() ([]byte, error) {
	line, err := f.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, &streamError{"camera frame stream: a header line over 64 KiB (not multipartmux's framing)"}
	}
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if len(line) == 0 || line[len(line)-1] != '\r' {
		return nil, &streamError{"camera frame stream: a header line not ended by CRLF (not multipartmux's framing)"}
	}
	return line[:len(line)-1], nil
}

// atoi parses a size of up to 10 digits; -1 for anything else.
func atoi(b []byte) int {
	if len(b) == 0 || len(b) > 10 {
		return -1
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1
		}
		n = 10*n + int(c-'0')
	}
	return n
}

// childLog passes the child's stderr to the log, at most childLogBurst lines per
// childLogPeriod (a failing camera can print a line per frame), and keeps the last
// error line for the lost event.
type childLog struct {
	log        *slog.Logger
	mu         sync.Mutex
	last       string
	detail     string // the debug info's last line under last
	debug      int    // where in last's debug info the reader is: 0 outside, 1..3 its lines
	n          int
	suppressed int
	window     time.Time
}

const (
	childLogBurst  = 10
	childLogPeriod = 10 * time.Second
)

func newChildLog(log *slog.Logger) *childLog { return &childLog{log: log} }

func (l *childLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case strings.HasPrefix(line, "ERROR") || strings.HasPrefix(line, "WARNING: erroneous"):
		l.debug = 0
		if l.last == "" || !strings.HasPrefix(l.last, "ERROR: from element") {
			l.last, l.detail = line, "" // the first error says why; the later ones how it ended
			l.debug = 1
		}
	case l.debug == 1 && line == "Additional debug info:":
		l.debug = 2
	case l.debug == 2: // where in GStreamer's source
		l.debug = 3
	case l.debug == 3: // the element's own detail: "streaming stopped, reason not-linked (-1)"
		l.detail, l.debug = line, 0
	}
	now := time.Now()
	if now.Sub(l.window) > childLogPeriod {
		if l.suppressed > 0 {
			l.log.Warn("gstreamer: lines not logged", "count", l.suppressed, "period", childLogPeriod)
		}
		l.window, l.n, l.suppressed = now, 0, 0
	}
	if l.n < childLogBurst {
		l.n++
		l.log.Warn("gstreamer: " + line)
	} else {
		l.suppressed++
	}
}

// lastError is the error line that says why the child failed, with its detail.
func (l *childLog) lastError() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.detail != "" {
		return l.last + " (" + l.detail + ")"
	}
	return l.last
}

// ErrUnreachable: the camera pipeline is well formed but the camera cannot be reached
// now (unplugged, switched off, another address, held by another process).
var ErrUnreachable = errors.New("capture: camera not reachable")

type unreachableError struct{ msg string }

func (e *unreachableError) Error() string { return e.msg }
func (e *unreachableError) Unwrap() error { return ErrUnreachable }

// CheckWait bounds how long CheckCamera waits for a first frame (less when
// CameraOptions.FirstFrame is less).
const CheckWait = 5 * time.Second

// CheckCamera checks what NewCamera would run by running it: gst-launch-1.0 is there,
// gst-inspect-1.0 knows every element the pipeline names, then the pipeline itself
// runs until its first frame, CheckWait at most, and that frame must be the
// configured size. The camera is opened for those seconds.
//
// A pipeline GStreamer cannot build, link or negotiate, and frames of another size,
// are config errors (ErrSource, naming the key, GStreamer's own line). A camera that
// reports it cannot be reached, or sends no frame in time, is ErrUnreachable: the
// configuration may be right, and the camera is not there now. A triggered camera
// (opt.Triggered, or a gige:// camera with TriggerMode=On) sends frames only for
// parts, so no frame in time without an error passes.
func CheckCamera(opt CameraOptions) error {
	args, err := opt.Spec.Args()
	if err != nil {
		return err
	}
	launch := opt.Launch
	if launch == "" {
		launch = "gst-launch-1.0"
	}
	path, err := exec.LookPath(launch)
	if err != nil {
		return &sourceError{fmt.Sprintf("capture.camera: %s not found (Debian: apt install gstreamer1.0-tools)", launch)}
	}
	inspect, err := exec.LookPath("gst-inspect-1.0")
	if err != nil {
		return &sourceError{"capture.camera: gst-inspect-1.0 not found (Debian: apt install gstreamer1.0-tools)"}
	}
	var missing []string
	for _, e := range spec.Elements(args) {
		// --atleast-version=0.0: plain --exists refuses plugins versioned apart from
		// GStreamer (Aravis 0.8's aravissrc, Basler's pylonsrc).
		if exec.Command(inspect, "--exists", "--atleast-version=0.0", e).Run() != nil {
			missing = append(missing, e)
		}
	}
	if len(missing) > 0 {
		return &sourceError{fmt.Sprintf("capture.camera.uri: GStreamer has no element %s (not installed, or a plugin of another board: %s)",
			strings.Join(missing, ", "), elementHint(missing))}
	}
	return probeCamera(opt, path, args)
}

// probeCamera runs the pipeline until its first frame or the check's time limit.
func probeCamera(opt CameraOptions, launch string, args []string) error {
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	wait := min(orDefault(opt.FirstFrame, DefaultFirstFrame), CheckWait)
	ch, err := startChild(launch, args, log)
	if err != nil {
		return &sourceError{"capture.camera: " + err.Error()}
	}
	ch.frames.SetReadDeadline(time.Now().Add(wait))
	w, h := opt.Spec.Width, opt.Spec.Height
	readErr := newFrameReader(ch.frames, w, h).read(make([]byte, w*h*3))
	waitErr := ch.stop()
	line := ch.logs.lastError()
	var se *streamError
	switch {
	case readErr == nil:
		return nil
	case errors.As(readErr, &se):
		return &sourceError{"capture.camera: " + se.msg}
	case parseError(line) || negotiationError(line):
		return &sourceError{"capture.camera.uri: GStreamer cannot run this pipeline: " + trimLevel(line)}
	case line != "":
		return &unreachableError{"capture.camera.uri: camera not reachable now: " + trimLevel(line)}
	case errors.Is(readErr, os.ErrDeadlineExceeded) && (opt.Triggered || opt.Spec.SelfTriggered()):
		return nil
	case errors.Is(readErr, os.ErrDeadlineExceeded):
		return &unreachableError{fmt.Sprintf("capture.camera.uri: camera not reachable now: no frame within %v and no error from GStreamer (check waits %v at most; a camera triggered by the line needs input.trigger)", wait, CheckWait)}
	}
	return &sourceError{fmt.Sprintf("capture.camera.uri: the pipeline ended without a frame and without an error (gst-launch-1.0: %v)", waitErr)}
}

// elementHint names where the missing elements come from.
func elementHint(missing []string) string {
	var hints []string
	for _, e := range missing {
		switch e {
		case "nvarguscamerasrc", "nvvidconv":
			hints = append(hints, e+" is NVIDIA's, in JetPack")
		case "aravissrc":
			hints = append(hints, "aravissrc: apt install libaravis-0.8-0")
		case "rtspsrc", "v4l2src", "jpegdec":
			hints = append(hints, e+": apt install gstreamer1.0-plugins-good")
		case "decodebin", "videoconvert", "videoscale", "queue", "fdsink":
			hints = append(hints, e+": apt install gstreamer1.0-plugins-base")
		case "multipartmux":
			hints = append(hints, e+" (adtrd's frame framing): apt install gstreamer1.0-plugins-good")
		case "pylonsrc":
			hints = append(hints, "pylonsrc is Basler's gst-plugin-pylon")
		}
	}
	if len(hints) == 0 {
		return "check the name with gst-inspect-1.0"
	}
	return strings.Join(hints, "; ")
}
