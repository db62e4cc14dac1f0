package capture

import (
	"bufio"
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
)

// CameraOptions configure a camera source: a supervised gst-launch-1.0 child whose
// stdout carries Spec.Width x Spec.Height RGB frames.
type CameraOptions struct {
	Spec CameraSpec
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
	Log    *slog.Logger
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
	DefaultStall      = 2 * time.Second
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

// runChild runs one child until it fails, and says how many frames it delivered.
func (c *Camera) runChild(ctx context.Context, lostAt time.Time) (uint64, error) {
	out, outW, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("frame pipe: %w", err)
	}
	defer out.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		outW.Close()
		return 0, fmt.Errorf("stderr pipe: %w", err)
	}
	cmd := exec.Command(c.launch, c.args...)
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.Env = append(os.Environ(), "GST_DEBUG_NO_COLOR=1")
	setProcAttr(cmd)
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		errR.Close()
		return 0, fmt.Errorf("start %s: %w", c.launch, err)
	}
	c.mu.Lock()
	c.child = cmd.Process
	c.mu.Unlock()
	logs := newChildLog(c.log)
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		logs.read(errR)
	}()
	// A stop or Close interrupts a read that would wait for the stall deadline.
	stopRead := context.AfterFunc(ctx, func() { out.SetReadDeadline(time.Now()) })
	n, readErr := c.readFrames(ctx, out, lostAt)
	stopRead()
	killGroup(cmd.Process)
	waitErr := cmd.Wait()
	// Something the child started may still hold its stderr (GStreamer's plugin
	// scanner, while it builds the registry): the log gets a moment, then the pipe
	// is closed under it.
	select {
	case <-logDone:
	case <-time.After(time.Second):
		errR.Close()
		<-logDone
	}
	errR.Close()
	c.mu.Lock()
	c.child = nil
	c.mu.Unlock()
	if line := logs.lastError(); n == 0 && (strings.Contains(line, "erroneous pipeline") || strings.Contains(line, "could not be constructed")) {
		line = strings.TrimPrefix(strings.TrimPrefix(line, "WARNING: "), "ERROR: ")
		return 0, &fatalError{msg: fmt.Sprintf("capture: camera: gst-launch-1.0: %s", line)}
	} else if line != "" {
		return n, fmt.Errorf("%v (%s)", readErr, line)
	}
	if errors.Is(readErr, io.EOF) || errors.Is(readErr, io.ErrUnexpectedEOF) {
		return n, fmt.Errorf("gst-launch-1.0 exited (%v)", waitErr)
	}
	return n, readErr
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
		if _, err := io.ReadFull(out, dst); err != nil {
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

// childLog passes the child's stderr to the log, at most childLogBurst lines per
// childLogPeriod (a failing camera can print a line per frame), and keeps the last
// error line for the lost event.
type childLog struct {
	log        *slog.Logger
	mu         sync.Mutex
	last       string
	n          int
	suppressed int
	window     time.Time
}

const (
	childLogBurst  = 10
	childLogPeriod = 10 * time.Second
)

func newChildLog(log *slog.Logger) *childLog { return &childLog{log: log} }

func (l *childLog) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		l.mu.Lock()
		if strings.HasPrefix(line, "ERROR") || strings.HasPrefix(line, "WARNING: erroneous") {
			if l.last == "" || !strings.HasPrefix(l.last, "ERROR: from element") {
				l.last = line // the first error says why; the later ones how it ended
			}
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
		l.mu.Unlock()
	}
}

func (l *childLog) lastError() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// CheckCamera checks what NewCamera would run, without starting it (no camera is
// opened): the pipeline builds, gst-launch-1.0 is there, and gst-inspect-1.0 knows
// every element the pipeline names.
func CheckCamera(opt CameraOptions) error {
	args, err := opt.Spec.Args()
	if err != nil {
		return err
	}
	launch := opt.Launch
	if launch == "" {
		launch = "gst-launch-1.0"
	}
	if _, err := exec.LookPath(launch); err != nil {
		return &sourceError{fmt.Sprintf("capture.camera: %s not found (Debian: apt install gstreamer1.0-tools)", launch)}
	}
	inspect, err := exec.LookPath("gst-inspect-1.0")
	if err != nil {
		return &sourceError{"capture.camera: gst-inspect-1.0 not found (Debian: apt install gstreamer1.0-tools)"}
	}
	var missing []string
	for _, e := range Elements(args) {
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
	return nil
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
		case "pylonsrc":
			hints = append(hints, "pylonsrc is Basler's gst-plugin-pylon")
		}
	}
	if len(hints) == 0 {
		return "check the name with gst-inspect-1.0"
	}
	return strings.Join(hints, "; ")
}
