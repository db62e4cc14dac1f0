package capture_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/capture/spec"
	"github.com/adtrd/adtrd/internal/testlib"
)

// These tests run real GStreamer (Debian's gstreamer1.0-tools and -plugins-base:
// videotestsrc is the camera). A physical camera is not on the build machine.

// live is a paced test camera at 64x48, 30 frames a second.
const live = "gst://videotestsrc is-live=true pattern=smpte ! video/x-raw,width=64,height=48,framerate=30/1"

func newCamera(t *testing.T, uri string, mod func(*capture.CameraOptions)) *capture.Camera {
	t.Helper()
	testlib.Tool(t, "gst-launch-1.0")
	opt := capture.CameraOptions{
		Spec: spec.CameraSpec{URI: uri, Width: 64, Height: 48}, Size: capture.Size{W: 32, H: 32},
		// Stall at the default: these tests count losses, and a shorter stall reads a
		// test process starved of CPU (race detector, busy CI) as one.
		Stall: capture.DefaultStall, FirstFrame: 5 * time.Second, BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
	}
	if mod != nil {
		mod(&opt)
	}
	c, err := capture.NewCamera(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// next waits for a frame, skipping ErrLost, up to d.
func next(t *testing.T, c *capture.Camera, d time.Duration) capture.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		f, err := c.Next(ctx)
		switch {
		case err == nil:
			return f
		case errors.Is(err, capture.ErrLost) && ctx.Err() == nil: // Next says lost before it looks at ctx
			time.Sleep(10 * time.Millisecond)
		default:
			t.Fatalf("no frame within %v: %v", d, err)
		}
	}
}

// untilLost waits for Next to say the camera is lost, releasing frames meanwhile.
func untilLost(t *testing.T, c *capture.Camera, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		f, err := c.Next(ctx)
		if err == nil {
			f.Release()
			continue
		}
		if !errors.Is(err, capture.ErrLost) {
			t.Fatalf("want ErrLost within %v, got %v", d, err)
		}
		return err
	}
}

// A camera frame becomes the model input a PNG of the same frame would (the
// toolkit's resize, not GStreamer's videoscale): the raw frame is taken from a
// separate gst-launch-1.0 run of the same pipeline.
func TestCameraFrameIsTheFilesInput(t *testing.T) {
	c := newCamera(t, live, func(o *capture.CameraOptions) { o.Latency = 20 * time.Millisecond })
	before := time.Now()
	f := next(t, c, 10*time.Second)
	defer f.Release()
	if len(f.Pixels) != 32*32*3 || f.Seq != 1 {
		t.Fatalf("frame seq %d of %d bytes, want seq 1 of %d", f.Seq, len(f.Pixels), 32*32*3)
	}
	if !f.Time.Before(time.Now().Add(-20*time.Millisecond)) || f.Time.Before(before.Add(-20*time.Millisecond)) {
		t.Fatalf("frame time %v: want arrival minus the 20ms latency, after %v", f.Time, before)
	}
	args := append(c.Args()[:0:0], c.Args()...)
	for i, a := range args {
		if a == "is-live=true" {
			args[i] = "num-buffers=1"
		}
	}
	// The frames' descriptor onto stdout: one multipartmux part, a 64-pixel row unpadded.
	out, err := exec.Command("sh", append([]string{"-c", `exec gst-launch-1.0 "$@" 3>&1`, "sh"}, args...)...).Output()
	hdr, raw, ok := bytes.Cut(out, []byte("\r\n\r\n"))
	if err != nil || !ok || !bytes.Contains(hdr, []byte("Content-Length: 9216")) || len(raw) != 64*48*3+2 {
		t.Fatalf("one frame from gst-launch-1.0 %v: %d bytes, %v", args, len(out), err)
	}
	img := image.NewNRGBA(image.Rect(0, 0, 64, 48))
	for i := range 64 * 48 {
		copy(img.Pix[4*i:], raw[3*i:3*i+3])
		img.Pix[4*i+3] = 255
	}
	want, err := capture.FitRGB(img, capture.Size{W: 32, H: 32}, capture.FitResize, "raw")
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != string(f.Pixels) {
		t.Fatal("the camera's frame differs from the same frame fitted as a file")
	}
}

// A child that dies (SIGKILL) or hangs (SIGSTOP: a stall) is one camera-lost event,
// then a restart and frames again.
func TestCameraLostAndBack(t *testing.T) {
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
		want string // in the lost error
	}{
		// the child dies: the pipe closes
		{"killed", syscall.SIGKILL, "exited"},
		// the child hangs: no frame within the stall time
		{"stopped", syscall.SIGSTOP, "stalled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCamera(t, live, nil)
			for range 3 {
				f := next(t, c, 10*time.Second)
				f.Release()
			}
			p := c.Child()
			if p == nil {
				t.Fatal("no child while frames flow")
			}
			p.Signal(tc.sig)
			err := untilLost(t, c, 5*time.Second)
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("lost with %q, want it to say %q", err, tc.want)
			}
			f := next(t, c, 10*time.Second)
			f.Release()
			st := c.Stats()
			if st.Losses != 1 || st.Restarts < 1 || !st.Up {
				t.Fatalf("stats %+v: want one loss, a restart, up again", st)
			}
			if c.Child() == p {
				t.Fatal("still the old child")
			}
		})
	}
}

// Pipelines that cannot work: GStreamer's refusal (an unknown element, a syntax
// error) ends the stream with its own one-line message, since no restart helps;
// a camera that opens but sends nothing, or a resource that is missing, is a lost
// camera, retried.
func TestCameraPipelineFaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		uri   string
		fatal bool
		want  string
	}{
		// a typo in an element's name
		{"unknown element", "gst://videotestsrc ! nosuchelement0", true, `no element "nosuchelement0"`},
		// a property the element does not have
		{"unknown property", "gst://videotestsrc nosuchprop=1", true, `no property "nosuchprop"`},
		// a syntax error only GStreamer's parser sees (unbalanced bins and quotes are
		// refused before the child starts: config's table)
		{"syntax error", "gst://videotestsrc ! =x", true, "erroneous pipeline: syntax error"},
		// a camera that never sends a frame
		{"no frame", "gst://videotestsrc is-live=true ! valve drop=true", false, "no frame within 300ms of the start"},
		// a device that is not there
		{"missing resource", "gst://filesrc location=/nonexistent/cam ! decodebin", false, "Resource not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCamera(t, tc.uri, func(o *capture.CameraOptions) { o.FirstFrame = 300 * time.Millisecond })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var err error
			for {
				if _, err = c.Next(ctx); err == nil {
					t.Fatal("a frame from a pipeline that cannot give one")
				}
				if !tc.fatal || !errors.Is(err, capture.ErrLost) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if errors.Is(err, capture.ErrLost) == tc.fatal || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q: want one line with %q, fatal %v", err, tc.want, tc.fatal)
			}
			if tc.fatal && !errors.Is(err, capture.ErrSource) {
				t.Fatalf("error %q: want capture.ErrSource", err)
			}
		})
	}
}

// 100 reconnects leave no goroutine, descriptor or child process behind: the child
// gives two frames and exits, so each frame pair is one loss and one restart.
func TestCameraReconnectsWithoutLeaks(t *testing.T) {
	testlib.Tool(t, "gst-launch-1.0")
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)
	c := newCamera(t, "gst://videotestsrc num-buffers=2 ! video/x-raw,width=64,height=48", func(o *capture.CameraOptions) {
		o.BackoffMin, o.BackoffMax = time.Millisecond, time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for c.Stats().Restarts < 100 {
		f, err := c.Next(ctx)
		switch {
		case err == nil:
			f.Release()
		case errors.Is(err, capture.ErrLost):
			time.Sleep(time.Millisecond)
		default:
			t.Fatalf("after %d restarts: %v", c.Stats().Restarts, err)
		}
	}
	c.Close()
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.Next(ctx); !errors.Is(err, capture.ErrClosed) {
		t.Fatalf("Next after Close: %v, want ErrClosed", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		g, n, kids := runtime.NumGoroutine(), openFDs(t), len(testlib.Children(t, os.Getpid()))
		if g <= goroutines && n <= fds && kids == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 100 restarts and Close: %d goroutines (was %d), %d descriptors (was %d), %d children", g, goroutines, n, fds, kids)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkGigE runs CheckCamera on the fake GigE Vision camera, again when it reads as
// unreachable, three tries in all. aravissrc ends its stream when no complete frame
// comes within a fixed 2 s (GST_ARAVIS_BUFFER_TIMEOUT_DEFAULT in Aravis 0.8), and
// a CI machine with both cores busy has starved the fake camera that long (CI,
// 2026-12-07: "Internal data stream error"); the check saying so is right, and a
// camera that never delivers still fails here.
func checkGigE(t *testing.T, opt capture.CameraOptions) error {
	t.Helper()
	var err error
	for try := 1; try <= 3; try++ {
		if err = capture.CheckCamera(opt); err == nil || !errors.Is(err, capture.ErrUnreachable) {
			return err
		}
		t.Logf("check, try %d of 3: %v", try, err)
	}
	return err
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// A real GigE Vision camera protocol: Debian's arv-fake-gv-camera-0.8 on 127.0.0.1
// (GVCP/GVSP, Mono8 512x512) through gige:// and aravissrc. Stopping the camera
// mid-run is one loss, and starting it again brings frames back.
func TestCameraGigEVisionLostAndBack(t *testing.T) {
	start := testlib.FakeGigECamera(t)
	testlib.Tool(t, "gst-launch-1.0")
	cam := start()
	c := newCamera(t, "gige://127.0.0.1", func(o *capture.CameraOptions) {
		o.Spec.Width, o.Spec.Height = 512, 512
		o.Stall, o.FirstFrame = capture.DefaultStall, 3*time.Second // not shorter: a test process starved of CPU would read as a second loss
	})
	lostAndBack(t, c, cam, func() { start() })
}

// A camera is handed back when adtrd is done with it: `adtrd check` right before
// `adtrd run`, and a restarted daemon, find a GigE Vision camera free. A SIGKILLed
// aravissrc keeps the camera's control channel until the camera's heartbeat timeout,
// and the next start lost the camera 3 s in ("Controller privilege required for
// streaming control"); the child is now interrupted (its pipeline set to NULL, its
// frames drained meanwhile) before it is killed.
func TestCameraIsHandedBackAfterCheckAndClose(t *testing.T) {
	start := testlib.FakeGigECamera(t)
	testlib.Tool(t, "gst-launch-1.0")
	testlib.Tool(t, "gst-inspect-1.0")
	start()
	cs := spec.CameraSpec{URI: "gige://127.0.0.1", Width: 512, Height: 512}
	// the camera's and the check's log lines, printed when the test fails
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := checkGigE(t, capture.CameraOptions{Spec: cs, Size: capture.Size{W: 224, H: 224}, Log: log}); err != nil {
		t.Fatalf("%v; the log:\n%s", err, logs.String())
	}
	run := func(d time.Duration) {
		c := newCamera(t, cs.URI, func(o *capture.CameraOptions) {
			o.Spec, o.Size = cs, capture.Size{W: 224, H: 224}
			o.Stall, o.FirstFrame = capture.DefaultStall, 5*time.Second
			o.Log = log
		})
		for until := time.Now().Add(d); time.Now().Before(until); {
			f := next(t, c, 5*time.Second)
			f.Release()
		}
		if st := c.Stats(); st.Losses != 0 {
			t.Fatalf("stats %+v: the camera was lost (held by the previous child); the log:\n%s", st, logs.String())
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	run(4 * time.Second) // after the check
	run(4 * time.Second) // after a Close
}

// BenchmarkCamera: frames a second through the camera source (the child's
// videotestsrc and videoconvert, the pipe, the toolkit's resize to 224x224 and the
// hand-off) at three camera sizes, and at one whose RGB rows GStreamer pads (1278*3 =
// 3834 bytes, padded to 3836: read row by row); allocs/op is per frame (goal 0 after
// warm-up).
func BenchmarkCamera(b *testing.B) {
	for _, sz := range [][2]int{{640, 480}, {1280, 720}, {1278, 720}, {1920, 1080}} {
		b.Run(fmt.Sprintf("%dx%d", sz[0], sz[1]), func(b *testing.B) {
			testlib.Tool(b, "gst-launch-1.0")
			uri := fmt.Sprintf("gst://videotestsrc pattern=snow ! video/x-raw,width=%d,height=%d", sz[0], sz[1])
			c, err := capture.NewCamera(capture.CameraOptions{
				Spec: spec.CameraSpec{URI: uri, Width: sz[0], Height: sz[1]}, Size: capture.Size{W: 224, H: 224},
			})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			for range 5 { // warm-up: the first frames, the pool's buffers
				f, err := c.Next(ctx)
				if err != nil {
					b.Fatal(err)
				}
				f.Release()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				f, err := c.Next(ctx)
				if err != nil {
					b.Fatal(err)
				}
				f.Release()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// RTSP: a test RTSP server on 127.0.0.1 (testdata/rtsp/serve.py, Debian's python3-gi
// with GstRtspServer; H.264 from x264enc) read through rtsp://. Killing the server
// mid-run is one loss; starting it again on the same port brings frames back, which
// is where RTSP readers that never reconnect fail.
func TestCameraRTSPLostAndBack(t *testing.T) {
	testlib.Tool(t, "gst-launch-1.0")
	py := testlib.Tool(t, "/usr/bin/python3")
	if err := exec.Command(py, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')").Run(); err != nil {
		testlib.Missing(t, "python3-gi with GstRtspServer (apt install python3-gi gir1.2-gst-rtsp-server-1.0)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	serve := func() *exec.Cmd {
		cmd := exec.Command(py, filepath.Join("testdata", "rtsp", "serve.py"), port)
		testlib.DiesWithTest(cmd)
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		line, _ := bufio.NewReader(out).ReadString('\n')
		if line != "ready\n" {
			t.Fatalf("RTSP server on port %s: %q", port, line)
		}
		return cmd
	}
	srv := serve()
	c := newCamera(t, "rtsp://127.0.0.1:"+port+"/cam", func(o *capture.CameraOptions) {
		o.Spec.Width, o.Spec.Height = 160, 120
		o.Stall = capture.DefaultStall
	})
	lostAndBack(t, c, srv, func() { serve() })
}

// lostAndBack takes frames from c, kills the process that serves them (a camera or a
// server), waits for the loss, lets a restart or two find nothing, starts the server
// again and wants frames back after exactly one loss.
func lostAndBack(t *testing.T, c *capture.Camera, server *exec.Cmd, restart func()) {
	t.Helper()
	for range 3 {
		f := next(t, c, 20*time.Second)
		f.Release()
	}
	server.Process.Kill()
	server.Wait()
	untilLost(t, c, 10*time.Second)
	time.Sleep(time.Second)
	restart()
	f := next(t, c, 30*time.Second)
	f.Release()
	if st := c.Stats(); st.Losses != 1 || !st.Up {
		t.Fatalf("stats %+v: want one loss and the camera up again", st)
	}
}

// CheckCamera runs the pipeline to its first frame (after asking gst-inspect-1.0 for
// every element): what GStreamer cannot build, link or negotiate, and frames of
// another size, are config errors (ErrSource) with GStreamer's own line; a camera that
// cannot be reached now is ErrUnreachable, and so is one that sends nothing, unless it
// waits for a trigger.
func TestCheckCamera(t *testing.T) {
	testlib.Tool(t, "gst-inspect-1.0")
	testlib.Tool(t, "gst-launch-1.0")
	startGigE := testlib.FakeGigECamera(t) // aravis-tools comes with libaravis's aravissrc
	const (
		ok          = iota
		config      // ErrSource: the file is wrong
		unreachable // ErrUnreachable: the camera is not there now
	)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	for _, tc := range []struct {
		name, uri string
		width     int
		triggered bool
		gige      bool // the fake GigE Vision camera runs
		kind      int
		want      string
	}{
		// a live pattern at a width whose RGB rows GStreamer pads (250*3 = 750 -> 752)
		{"live", "gst://videotestsrc is-live=true ! video/x-raw,width=320,height=240", 250, false, false, ok, ""},
		// a real GigE Vision camera (Mono8 512x512, converted to RGB by the tail)
		{"gige", "gige://127.0.0.1", 64, false, true, ok, ""},
		// a GigE Vision feature value the camera does not have: the camera refuses the config
		{"gige feature", "gige://127.0.0.1", 64, false, true, config, `[TriggerSource] 'Line9' not an entry`},
		// a pad reference ("c.") to the compositor named c
		{"reference", "gst://videotestsrc ! c. compositor name=c", 64, false, false, ok, ""},
		// JPEG into the tail's videoconvert: field case 20
		{"jpeg before the tail", "gst://videotestsrc ! jpegenc", 64, false, false, config, "could not link queue0 to videoconvert0"},
		// a format GStreamer does not know: field case 20
		{"unknown format", "gst://videotestsrc ! video/x-raw,format=NOTAFORMAT", 64, false, false, config, "can't handle caps video/x-raw, format=(string)NOTAFORMAT"},
		// caps the source cannot give
		{"wrong caps", "gst://videotestsrc ! audio/x-raw", 64, false, false, config, "can't handle caps audio/x-raw"},
		// a link found only once data flows: decodebin's audio fits no video tail
		{"unlinkable at run time", "gst://audiotestsrc ! decodebin", 64, false, false, config, "reason not-linked"},
		// a property the element does not have
		{"unknown property", "gst://videotestsrc nosuchprop=1", 64, false, false, config, `no property "nosuchprop"`},
		// an element GStreamer does not have, and one that is NVIDIA's
		{"unknown", "gst://videotestsrc ! nosuchelement0", 64, false, false, config, "capture.camera.uri: GStreamer has no element nosuchelement0"},
		{"jetson", "gst://nvarguscamerasrc", 64, false, false, config, "nvarguscamerasrc is NVIDIA's, in JetPack"},
		// a source that ends before its first frame
		{"no frames at all", "gst://videotestsrc num-buffers=0", 64, false, false, config, "ended without a frame"},
		// an RTSP camera that is off (nothing listens on its port)
		{"rtsp off", "rtsp://127.0.0.1:" + closedPort + "/cam", 64, false, false, unreachable, "camera not reachable now: from element /GstPipeline:pipeline0/GstRTSPSrc:rtspsrc0: Could not open resource"},
		// a device that is not there (an unplugged camera's node)
		{"unplugged", "gst://filesrc location=/nonexistent/cam ! decodebin", 64, false, false, unreachable, `Resource not found. (No such file "/nonexistent/cam")`},
		// a live camera that sends nothing and says nothing
		{"silent", "gst://videotestsrc is-live=true ! valve drop=true", 64, false, false, unreachable, "no frame within 1s"},
		// the same camera waiting for the line's trigger (input.trigger)
		{"silent and triggered", "gst://videotestsrc is-live=true ! valve drop=true", 64, true, false, ok, ""},
		// the same camera set to TriggerMode=On (a gige:// feature; the fake GigE camera
		// streams on regardless, so the silent head stands in for one that waits)
		{"silent and self-triggered", "gst://videotestsrc is-live=true ! valve drop=true", 64, false, false, ok, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.gige {
				cam := startGigE()
				defer func() { cam.Process.Kill(); cam.Wait() }()
			}
			opt := capture.CameraOptions{Spec: spec.CameraSpec{URI: tc.uri, Width: tc.width, Height: 48}, Size: capture.Size{W: 32, H: 32}, Triggered: tc.triggered}
			switch tc.name {
			case "silent", "silent and triggered":
				opt.FirstFrame = time.Second
			case "silent and self-triggered":
				opt.Spec.Features = map[string]string{"triggermode": "on"}
				opt.FirstFrame = time.Second
			case "gige feature":
				opt.Spec.Features = map[string]string{"TriggerSource": "Line9"}
			}
			var err error
			if tc.gige && tc.kind == ok {
				err = checkGigE(t, opt)
			} else {
				err = capture.CheckCamera(opt)
			}
			switch {
			case tc.kind == ok && err != nil:
				t.Fatalf("%s: %v", tc.uri, err)
			case tc.kind == ok:
			case err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n"):
				t.Fatalf("%s: %v, want one line saying %q", tc.uri, err, tc.want)
			case tc.kind == config && (!errors.Is(err, capture.ErrSource) || errors.Is(err, capture.ErrUnreachable)):
				t.Fatalf("%s: %v, want a config error (ErrSource)", tc.uri, err)
			case tc.kind == unreachable && (!errors.Is(err, capture.ErrUnreachable) || errors.Is(err, capture.ErrSource)):
				t.Fatalf("%s: %v, want ErrUnreachable", tc.uri, err)
			}
		})
	}
}

// noisePNG writes a w x h PNG of random opaque pixels: any shear, offset or
// misplaced row shows as a byte difference.
func noisePNG(t *testing.T, w, h int) (string, *image.NRGBA) {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(uint64(w), uint64(h)))
	for i := range img.Pix {
		img.Pix[i] = byte(r.Uint32())
		if i%4 == 3 {
			img.Pix[i] = 255
		}
	}
	path := filepath.Join(t.TempDir(), "frame.png")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return path, img
}

// A camera frame is the picture the camera saw, for every width: GStreamer pads each
// RGB row to 4 bytes, so rows of 250, 251, 253 and 255 pixels arrive with 2, 3, 1 and
// 3 bytes of padding (field case 16 sheared every frame at 250). The camera is a PNG
// of noise, frozen into a live stream; its frames must be its pixels, read straight
// into the pool (camera size = model size) or through the toolkit's resize.
func TestCameraFramesOfEveryWidth(t *testing.T) {
	for _, w := range []int{
		250, // 750-byte rows padded to 752: field case 16
		251, // 753 -> 756
		253, // 759 -> 760
		255, // 765 -> 768
		252, // 756: no padding, the control
		1,   // 3 -> 4, the narrowest
	} {
		for _, resized := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d/resized=%v", w, resized), func(t *testing.T) {
				const h = 37 // odd: a whole frame's padding is not a multiple of anything handy
				path, img := noisePNG(t, w, h)
				size := capture.Size{W: w, H: h}
				if resized {
					size = capture.Size{W: 32, H: 32}
				}
				want, err := capture.FitRGB(img, size, capture.FitResize, "png")
				if err != nil {
					t.Fatal(err)
				}
				c := newCamera(t, "gst://filesrc location="+path+" ! pngdec ! imagefreeze is-live=true", func(o *capture.CameraOptions) {
					o.Spec.Width, o.Spec.Height, o.Size = w, h, size
				})
				for i := range 3 {
					f := next(t, c, 10*time.Second)
					same := string(f.Pixels) == string(want)
					f.Release()
					if !same {
						t.Fatalf("frame %d of a %dx%d camera is not the camera's picture", i+1, w, h)
					}
				}
			})
		}
	}
}

// Text an element prints on the child's stdout (identity dump=true prints every
// buffer as hex) is the log's, never pixels: frames have their own descriptor.
func TestCameraFramesApartFromStdout(t *testing.T) {
	path, img := noisePNG(t, 250, 48)
	want, err := capture.FitRGB(img, capture.Size{W: 32, H: 32}, capture.FitResize, "png")
	if err != nil {
		t.Fatal(err)
	}
	var logs testlib.SyncBuffer
	c := newCamera(t, "gst://filesrc location="+path+" ! pngdec ! imagefreeze is-live=true ! video/x-raw,framerate=10/1 ! identity dump=true", func(o *capture.CameraOptions) {
		o.Spec.Width, o.Log = 250, slog.New(slog.NewTextHandler(&logs, nil))
	})
	for i := range 3 {
		f := next(t, c, 10*time.Second)
		same := string(f.Pixels) == string(want)
		f.Release()
		if !same {
			t.Fatalf("frame %d is not the camera's picture", i+1)
		}
	}
	if st := c.Stats(); st.Losses != 0 {
		t.Fatalf("stats %+v: the printing element lost the camera", st)
	}
	if !strings.Contains(logs.String(), "gstreamer: 00000000 (0x") {
		t.Fatalf("the dump did not reach the log: %.300q", logs.String())
	}
}

// A frame stream that is not W x H RGB frames in adtrd's framing is a lost camera
// saying what is wrong in one line, and no frame of it is handed out. The child here
// is a script standing in for gst-launch-1.0, writing to the frames' descriptor.
func TestCameraFrameStreamFaults(t *testing.T) {
	const hdr = `--adtrdframe\r\nContent-Type: video/x-raw\r\nContent-Length: %d\r\n\r\n`
	for _, tc := range []struct {
		name, script, want string
	}{
		// a frame of another size than 64x48 RGB (9216 bytes, unpadded at 64)
		{"size", `printf -- '` + fmt.Sprintf(hdr, 9000) + `' >&3; head -c 9000 /dev/zero >&3`, "camera frame of 9000 bytes: a 64x48 RGB frame is 9216: the pipeline does not deliver the configured frame"},
		// text where a frame belongs
		{"text", `printf 'hello\r\n' >&3`, "camera frame stream: \"hello\" where a frame's boundary --adtrdframe belongs"},
		// a line of text, as a stdout print would have been
		{"line", `echo hello >&3`, "a header line not ended by CRLF"},
		// a buffer that is not raw video
		{"type", `printf -- '--adtrdframe\r\nContent-Type: image/jpeg\r\nContent-Length: 9216\r\n\r\n' >&3`, `a frame of type "image/jpeg", want video/x-raw`},
		// more bytes than the header said
		{"overrun", `printf -- '` + fmt.Sprintf(hdr, 9216) + `' >&3; head -c 9300 /dev/zero >&3`, "no CRLF after a frame"},
		// a size that is no number
		{"length", `printf -- '--adtrdframe\r\nContent-Type: video/x-raw\r\nContent-Length: -5\r\n\r\n' >&3`, `Content-Length "-5"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			launch := filepath.Join(t.TempDir(), "gst-launch")
			os.WriteFile(launch, []byte("#!/bin/sh\n"+tc.script+"\nexec sleep 60\n"), 0o755)
			c := newCamera(t, live, func(o *capture.CameraOptions) { o.Launch = launch })
			err := untilLost(t, c, 10*time.Second)
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("lost with %q, want one line saying %q", err, tc.want)
			}
			if st := c.Stats(); st.Frames != 0 {
				t.Fatalf("stats %+v: frames handed out from a broken stream", st)
			}
			// check runs the same child: a config error
			err = capture.CheckCamera(capture.CameraOptions{Spec: spec.CameraSpec{URI: live, Width: 64, Height: 48}, Size: capture.Size{W: 32, H: 32}, Launch: launch})
			if !errors.Is(err, capture.ErrSource) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("check: %v, want ErrSource saying %q", err, tc.want)
			}
		})
	}
}

// Close returns whenever it lands: right after NewCamera, while the child starts, and
// between or inside frames. A stop that came before a read once had its deadline
// replaced by the read's own, and Close waited for ever while frames flowed (seen
// once under load, in TestOpenCameraSource; the window is too narrow for this test to
// hit it every time). 5 s is a hang detector, not a goal.
func TestCameraCloseWhileFramesFlow(t *testing.T) {
	testlib.Tool(t, "gst-launch-1.0")
	for i := range 20 {
		c := newCamera(t, "gst://videotestsrc is-live=true ! video/x-raw,width=64,height=48,framerate=100/1", nil)
		if i%2 == 1 { // frames flowing first; the even ones close at once
			f := next(t, c, 10*time.Second)
			f.Release()
			time.Sleep(time.Duration(i) * time.Millisecond) // land at different points of a frame
		}
		done := make(chan struct{})
		go func() { c.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("close %d: Close still waiting after 5 s while frames flow", i)
		}
	}
}

// syncBuffer is a bytes.Buffer the camera's goroutines and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
