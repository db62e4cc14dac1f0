// Package spec is how a frame source is described, shared by config (which reads it)
// and capture (which runs it): how frames are fitted to the model's input, a camera's
// URI and options, and the gst-launch-1.0 arguments they mean. Pure: no process, no
// image.
package spec

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrURI reports a camera URI or option that no pipeline can be built from.
var ErrURI = errors.New("capture: camera")

// Converter is the element that turns the camera's frames into RGB for the pipe.
type Converter int

const (
	ConvertVideo Converter = iota // videoconvert + videoscale, on the CPU (any GStreamer)
	ConvertNV                     // nvvidconv, on a Jetson's VIC; frames must be in NVMM memory or system memory
)

var converterNames = []string{"videoconvert", "nvvidconv"}

func (c Converter) String() string { return name(converterNames, int(c), "converter") }

// UnmarshalText reads a converter by its name (config's capture.camera.converter).
func (c *Converter) UnmarshalText(b []byte) error { return parse(converterNames, b, c) }

// MarshalText writes the converter's name.
func (c Converter) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// Fit is how a frame of another size reaches the model's input size.
type Fit int

const (
	FitResize Fit = iota // bilinear resize of the whole frame
	FitCrop              // centre crop; the frame must be at least as large
)

var fitNames = []string{"resize", "crop"}

func (f Fit) String() string { return name(fitNames, int(f), "fit") }

// UnmarshalText reads a fit by its name (config's capture.replay.fit).
func (f *Fit) UnmarshalText(b []byte) error { return parse(fitNames, b, f) }

// MarshalText writes the fit's name.
func (f Fit) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

func name(names []string, i int, kind string) string {
	if i >= 0 && i < len(names) {
		return names[i]
	}
	return fmt.Sprintf("%s(%d)", kind, i)
}

func parse[T ~int](names []string, b []byte, out *T) error {
	for i, n := range names {
		if string(b) == n {
			*out = T(i)
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", b, strings.Join(names, ", "))
}

// DefaultStall is how long a camera may go without a frame before it is lost (and
// restarted), when its options give no stall.
const DefaultStall = 2 * time.Second

// CameraSpec is what a camera pipeline is built from: the URI as jetson-inference
// spells it, the frame size read from the pipe, and per-kind options.
type CameraSpec struct {
	URI       string
	Converter Converter
	// Width x Height is the frame size the child delivers (RGB, 3 bytes a pixel).
	Width, Height int
	// FPS asks the camera for this rate where the URI kind has caps for it (csi, v4l2);
	// 0 leaves the camera's own.
	FPS float64
	// V4L2Format is the V4L2 camera's pixel format: "" (raw, the camera's choice) or
	// "MJPG" (decoded with jpegdec).
	V4L2Format string
	// RTSPTransport is "tcp" (default, survives packet loss) or "udp"; RTSPLatency the
	// jitter buffer.
	RTSPTransport string
	RTSPLatency   time.Duration
	// Exposure (µs) and Gain (dB) for gige://; 0: the camera's setting. Features are
	// further GenICam feature assignments (TriggerMode=On), by name.
	Exposure, Gain float64
	Features       map[string]string
}

// Kinds of camera URI, by scheme.
var uriSchemes = []string{"csi", "v4l2", "rtsp", "rtsps", "gige", "gst"}

var (
	featureName  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	featureValue = regexp.MustCompile(`^[A-Za-z0-9_.+-]+$`)
	gigeName     = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)
)

// Head is the GStreamer pipeline head a URI stands for (README "Cameras"):
//
//	csi://N             nvarguscamerasrc sensor-id=N [! video/x-raw(memory:NVMM),width=,height=,framerate=]
//	v4l2:///dev/videoN  v4l2src device=/dev/videoN [! video/x-raw|image/jpeg,width=,height=,framerate= [! jpegdec]]
//	rtsp://host/path    rtspsrc location=rtsp://host/path latency=MS protocols=tcp ! decodebin
//	gige://NAME         aravissrc camera-name=NAME [exposure=] [gain=] [features="K=V ..."]
//	gst://HEAD          HEAD, as written (e.g. pylonsrc for Basler cameras)
//
// Each element is one argument: gst-launch-1.0 joins its arguments with spaces and
// parses the result itself, so the quoting of a gst:// head is GStreamer's own.
func (s CameraSpec) Head() ([]string, error) {
	scheme, rest, ok := strings.Cut(s.URI, "://")
	if !ok || !slices.Contains(uriSchemes, scheme) {
		return nil, fmt.Errorf("%w: uri %q: want csi://N, v4l2:///dev/videoN, rtsp://host/path, gige://NAME or gst://<pipeline head>", ErrURI, s.URI)
	}
	if s.Converter == ConvertVideo && scheme == "csi" {
		return nil, fmt.Errorf("%w: uri %s: nvarguscamerasrc gives NVMM frames, which only nvvidconv converts (converter: nvvidconv)", ErrURI, s.URI)
	}
	rate := ""
	if s.FPS > 0 {
		n, d := fraction(s.FPS)
		rate = fmt.Sprintf(",framerate=%d/%d", n, d)
	}
	size := ""
	if s.Width > 0 {
		size = fmt.Sprintf(",width=%d,height=%d", s.Width, s.Height)
	}
	switch scheme {
	case "csi":
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 || n > 15 {
			return nil, fmt.Errorf("%w: uri %s: want csi://N with sensor N in 0..15", ErrURI, s.URI)
		}
		h := []string{"nvarguscamerasrc", fmt.Sprintf("sensor-id=%d", n)}
		if size != "" || rate != "" {
			h = append(h, "!", "video/x-raw(memory:NVMM)"+size+rate)
		}
		return h, nil
	case "v4l2":
		if !strings.HasPrefix(rest, "/dev/") || strings.ContainsAny(rest, " \t\"'!") {
			return nil, fmt.Errorf("%w: uri %s: want v4l2:///dev/videoN", ErrURI, s.URI)
		}
		h := []string{"v4l2src", "device=" + rest}
		switch s.V4L2Format {
		case "":
			if size != "" || rate != "" {
				h = append(h, "!", "video/x-raw"+size+rate)
			}
		case "MJPG":
			h = append(h, "!", "image/jpeg"+size+rate, "!", "jpegdec")
		default:
			return nil, fmt.Errorf("%w: v4l2 format %q: want \"\" (raw) or MJPG", ErrURI, s.V4L2Format)
		}
		return h, nil
	case "rtsp", "rtsps":
		u, err := url.Parse(s.URI)
		if err != nil || u.Host == "" || strings.ContainsAny(s.URI, " \t\"'!") {
			return nil, fmt.Errorf("%w: uri %q: want rtsp://host[:port]/path", ErrURI, s.URI)
		}
		tr := s.RTSPTransport
		if tr == "" {
			tr = "tcp"
		}
		if tr != "tcp" && tr != "udp" {
			return nil, fmt.Errorf("%w: rtsp transport %q: want tcp or udp", ErrURI, tr)
		}
		lat := s.RTSPLatency
		if lat < 0 || lat > 10*time.Second {
			return nil, fmt.Errorf("%w: rtsp latency %v out of range 0..10s", ErrURI, lat)
		}
		return []string{"rtspsrc", "location=" + s.URI, fmt.Sprintf("latency=%d", lat.Milliseconds()), "protocols=" + tr, "!", "decodebin"}, nil
	case "gige":
		if !gigeName.MatchString(rest) {
			return nil, fmt.Errorf("%w: uri %s: want gige://NAME (the camera's IP address, or its name as Aravis reports it)", ErrURI, s.URI)
		}
		h := []string{"aravissrc", "camera-name=" + rest}
		if s.Exposure > 0 {
			h = append(h, "exposure="+strconv.FormatFloat(s.Exposure, 'g', -1, 64))
		}
		if s.Gain != 0 {
			h = append(h, "gain="+strconv.FormatFloat(s.Gain, 'g', -1, 64))
		}
		if len(s.Features) > 0 {
			names := make([]string, 0, len(s.Features))
			for k := range s.Features {
				names = append(names, k)
			}
			slices.Sort(names)
			var kv []string
			for _, k := range names {
				v := s.Features[k]
				if !featureName.MatchString(k) || !featureValue.MatchString(v) {
					return nil, fmt.Errorf("%w: gige feature %q=%q: want a GenICam name and a plain value (letters, digits, _ . + -)", ErrURI, k, v)
				}
				kv = append(kv, k+"="+v)
			}
			h = append(h, `features="`+strings.Join(kv, " ")+`"`)
		}
		return h, nil
	default: // gst
		h := strings.Fields(rest)
		if len(h) == 0 {
			return nil, fmt.Errorf("%w: uri gst://: the pipeline head is empty", ErrURI)
		}
		if slices.ContainsFunc(h, func(t string) bool { return strings.HasPrefix(t, "fdsink") || strings.HasPrefix(t, "filesink") }) {
			return nil, fmt.Errorf("%w: uri %s: give only the head: adtrd appends the conversion and the sink", ErrURI, s.URI)
		}
		if h[len(h)-1] == "!" {
			return nil, fmt.Errorf("%w: uri %s: the head ends in \"!\" (adtrd adds the link to its tail)", ErrURI, s.URI)
		}
		if h[0] == "!" {
			return nil, fmt.Errorf("%w: uri %s: the head starts with \"!\"", ErrURI, s.URI)
		}
		for i := 1; i < len(h); i++ {
			if h[i] == "!" && h[i-1] == "!" {
				return nil, fmt.Errorf("%w: uri %s: \"! !\" links to nothing", ErrURI, s.URI)
			}
		}
		if err := balanced(rest); err != nil {
			return nil, fmt.Errorf("%w: uri %s: %v", ErrURI, s.URI, err)
		}
		return h, nil
	}
}

// SelfTriggered: a gige:// camera set to wait for a trigger on its own input line.
func (s CameraSpec) SelfTriggered() bool {
	for k, v := range s.Features {
		if strings.EqualFold(k, "TriggerMode") && strings.EqualFold(v, "On") {
			return true
		}
	}
	return false
}

// balanced checks a gst:// head's quotes and bins: an open quote would swallow
// adtrd's tail into a property value and an open "(" would put it inside a bin,
// and gst-launch-1.0 then fails only once the camera is opened.
func balanced(head string) error {
	depth, quote := 0, false
	for i := 0; i < len(head); i++ {
		switch c := head[i]; {
		case c == '\\' && i+1 < len(head):
			i++ // an escaped character, as GStreamer's parser reads it
		case c == '"':
			quote = !quote
		case quote:
		case c == '(':
			depth++
		case c == ')':
			if depth--; depth < 0 {
				return fmt.Errorf("a \")\" closes no bin")
			}
		}
	}
	switch {
	case quote:
		return fmt.Errorf("a quote (\") is not closed")
	case depth > 0:
		return fmt.Errorf("%d bin(s) opened with \"(\" are not closed", depth)
	}
	return nil
}

// FrameFD is the child's descriptor that carries frames: not stdout, where an element
// (identity dump=true, a plugin's printf) may write text that would be read as pixels.
const FrameFD = 3

// FrameBoundary is multipartmux's boundary in the frame stream.
const FrameBoundary = "adtrdframe"

// Args is gst-launch-1.0's argument list: quiet, the head, then the tail that delivers
// Width x Height RGB frames to descriptor FrameFD. A queue that leaks the oldest frame
// keeps a slow reader from stalling the camera. multipartmux puts each buffer's size in
// front of it: GStreamer pads RGB rows to 4 bytes (a 250-pixel row is 752 bytes, not
// 750), and a buffer of any other size is seen as one instead of being read as pixels.
func (s CameraSpec) Args() ([]string, error) {
	if s.Width < 1 || s.Height < 1 || s.Width > 16384 || s.Height > 16384 {
		return nil, fmt.Errorf("%w: frame size %dx%d out of range 1..16384", ErrURI, s.Width, s.Height)
	}
	h, err := s.Head()
	if err != nil {
		return nil, err
	}
	caps := fmt.Sprintf("video/x-raw,format=RGB,width=%d,height=%d", s.Width, s.Height)
	args := append([]string{"-q"}, h...)
	args = append(args, "!", "queue", "max-size-buffers=2", "leaky=downstream")
	switch s.Converter {
	case ConvertNV:
		// nvvidconv scales on the VIC but has no packed RGB output: BGRx, then a
		// videoconvert at the delivered size.
		args = append(args, "!", "nvvidconv", "!", fmt.Sprintf("video/x-raw,format=BGRx,width=%d,height=%d", s.Width, s.Height),
			"!", "videoconvert", "!", caps)
	default:
		args = append(args, "!", "videoconvert", "!", "videoscale", "!", caps)
	}
	return append(args, "!", "multipartmux", "boundary="+FrameBoundary, "!", "fdsink", fmt.Sprintf("fd=%d", FrameFD), "sync=false"), nil
}

// Elements are the element names in a gst-launch argument list (what gst-inspect
// must know), in order, each once: the first word of every link that is not caps.
func Elements(args []string) []string {
	var out []string
	first := true
	for _, a := range args {
		switch {
		case a == "!":
			first = true
			continue
		case strings.HasPrefix(a, "-") && first && out == nil:
			continue // gst-launch's own flags
		}
		// not caps (a/b), a property (k=v), a bin "(" or a reference to a named
		// element or its pad ("c." or "c.sink_0"): element names have none of these
		if first && !strings.ContainsAny(a, "/=.(") && !slices.Contains(out, a) {
			out = append(out, a)
		}
		first = false
	}
	return out
}

// fraction writes fps as n/d for caps: 30 as 30/1, 29.97 as 30000/1001 (NTSC rates
// are that fraction, and caps must match a camera's exactly).
func fraction(fps float64) (int, int) {
	for _, d := range []int{1, 1001, 1000} {
		n := math.Round(fps * float64(d))
		if math.Abs(n/float64(d)-fps) < 1e-4*fps {
			return int(n), d
		}
	}
	return int(math.Round(fps * 1000)), 1000
}
