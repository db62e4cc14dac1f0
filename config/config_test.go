package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/internal/testlib"
)

// The annotated example documents the defaults: it must parse to exactly Default().
func TestExampleIsTheDefaults(t *testing.T) {
	got, err := config.Load(filepath.Join(testlib.Root(), "config", "example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := config.Default()
	want.Model.Path = testlib.Demo("adtr.tflite")
	want.Capture.Replay.Path = testlib.Demo("frames")
	if want.Model.External.Options == nil {
		want.Model.External.Options = map[string]string{}
	}
	if d := config.Diff(got, want); len(d) > 0 {
		t.Fatalf("example.yaml differs from Default() in %v:\n got %+v\nwant %+v", d, got, want)
	}
}

// writeCfg writes a config beside symlinks to the demo model and frames.
func writeCfg(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	os.Symlink(testlib.Demo("adtr.tflite"), filepath.Join(dir, "m.tflite"))
	os.Symlink(testlib.Demo("adtr.tflite.json"), filepath.Join(dir, "m.tflite.json"))
	os.Symlink(testlib.Demo("frames"), filepath.Join(dir, "frames"))
	p := filepath.Join(dir, "adtrd.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const base = "model:\n  path: m.tflite\ncapture:\n  replay:\n    path: frames\n"

func TestValidFile(t *testing.T) {
	p := writeCfg(t, base+"threshold: 12.5\noutput:\n  reject:\n    pulse: 20ms\n    delay: 1.5s\nlog:\n  format: json\n")
	c, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Threshold != 12.5 || time.Duration(c.Output.Reject.Delay) != 1500*time.Millisecond || c.Log.Format != config.LogJSON {
		t.Fatalf("%+v", c)
	}
	if c.Model.Path != filepath.Join(filepath.Dir(p), "m.tflite") {
		t.Fatalf("relative path not resolved: %s", c.Model.Path)
	}
}

func TestEveryKindOfErrorNamesKeyAndLine(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string // each must appear, in order of line
	}{
		// a key the schema does not have, and its line
		{"unknown key", base + "treshold: 3\n", []string{"line 6: treshold: unknown key"}},
		// nested unknown key: the full path
		{"unknown nested", base + "output:\n  reject:\n    width: 3ms\n", []string{"line 8: output.reject.width: unknown key"}},
		// a string where an integer belongs
		{"wrong type", "model:\n  path: m.tflite\n  threads: many\ncapture:\n  replay:\n    path: frames\n", []string{`line 3: model.threads: want an integer, got string "many"`}},
		// a scalar where a mapping belongs
		{"not a mapping", base + "log: loud\n", []string{"line 6: log: want a mapping, got string"}},
		// an enum value outside its set
		{"bad enum", base + "fail_safe: maybe\n", []string{`line 6: fail_safe: "maybe" is not one of reject, pass, alarm`}},
		// a duration without a unit
		{"bad duration", base + "output:\n  reject:\n    pulse: 50\n", []string{`line 8: output.reject.pulse: "50" is not a duration like 50ms`}},
		// out of range numbers
		{"range", "model:\n  path: m.tflite\ncapture:\n  queue: 0\n  replay:\n    path: frames\n", []string{"line 4: capture.queue: 0 out of range 1..64"}},
		// files that are not there
		{"missing model", "model:\n  path: nope.tflite\ncapture:\n  replay:\n    path: frames\n", []string{"line 2: model.path: model", "nope.tflite not found"}},
		// the same key twice
		{"duplicate", base + "threshold: 1\nthreshold: 2\n", []string{"line 7: threshold: duplicate key"}},
		// inputs on the simulated backend, which has none
		{"sim inputs", base + "input:\n  trigger:\n    line: PQ.05\n", []string{"input.trigger: the sim backend has no inputs"}},
		// the real backend without a reject line
		{"gpiochip no reject", base + "output:\n  backend: gpiochip\n", []string{"output.reject: the gpiochip backend needs the reject line"}},
		// one line for two roles
		{"line twice", base + "output:\n  backend: gpiochip\n  reject:\n    line: PQ.05\n  alarm:\n    line: PQ.05\n", []string{"output.alarm: same line as output.reject"}},
		// an offset without its chip, and a chip without a line
		{"offset without chip", base + "output:\n  backend: gpiochip\n  reject:\n    offset: 3\n  ready:\n    chip: gpiochip0\n", []string{"output.reject.offset: an offset needs chip", "output.ready.chip: which line?"}},
		// an offset that is not a number
		{"offset type", base + "output:\n  reject:\n    offset: twelve\n", []string{`line 8: output.reject.offset: want an integer, got string "twelve"`}},
		// counts without an encoder
		{"counts without encoder", base + "output:\n  reject:\n    delay_counts: 400\n", []string{"line 8: output.reject.delay_counts: a delay in encoder counts needs input.encoder"}},
		// a wired heartbeat that never beats
		{"heartbeat period", base + "output:\n  backend: gpiochip\n  reject:\n    line: A\n  heartbeat:\n    line: B\n", []string{"output.heartbeat.period: the heartbeat line is wired but its period is 0"}},
		// an unknown pull
		{"bad pull", base + "input:\n  encoder:\n    pull: sideways\n", []string{`input.encoder.pull: "sideways" is not one of none, up, down, float`}},
		// NaN and infinities defeat range checks (field case 05): every float key refuses them
		{"threshold NaN", base + "threshold: .nan\n", []string{"line 6: threshold: .nan is not a finite number"}},
		{"threshold NaN spelled NaN", base + "threshold: .NaN\n", []string{"line 6: threshold: .NaN is not a finite number"}},
		{"threshold +Inf", base + "threshold: .inf\n", []string{"line 6: threshold: .inf is not a finite number"}},
		{"threshold -Inf", base + "threshold: -.Inf\n", []string{"line 6: threshold: -.Inf is not a finite number"}},
		// field case 10: a NaN fps would later make every reload look like a restart key change
		{"fps NaN", "model:\n  path: m.tflite\ncapture:\n  replay:\n    path: frames\n    fps: .nan\n", []string{"line 6: capture.replay.fps: .nan is not a finite number"}},
		{"fps Inf", "model:\n  path: m.tflite\ncapture:\n  replay:\n    path: frames\n    fps: .inf\n", []string{"line 6: capture.replay.fps: .inf is not a finite number"}},
		// field case 04: aliases and merge keys are refused by name, never "want a mapping, got string"
		{"alias of a mapping", base + "output:\n  alarm: &pin\n    active_low: true\n  ready: *pin\n", []string{"line 9: output.ready: YAML aliases (*pin) are not supported; write the value out"}},
		{"alias of a scalar", base + "x: &t 12\nthreshold: *t\n", []string{"line 6: x: unknown key", "line 7: threshold: YAML aliases (*t) are not supported"}},
		{"merge key", base + "output:\n  alarm: &pin\n    active_low: true\n  ready:\n    <<: *pin\n    chip: gpiochip0\n", []string{"line 10: output.ready: YAML merge keys (<<) are not supported; write the keys out"}},
		// an option whose value is not a string: named by the option's key, never "want a mapping, got a mapping"
		{"option value a mapping", "capture:\n  replay:\n    path: frames\nmodel:\n  path: m.tflite\n  external:\n    options:\n      cache:\n        dir: /x\n", []string{"line 9: model.external.options.cache: want a string value, got a mapping"}},
		{"option value a list", "capture:\n  replay:\n    path: frames\nmodel:\n  path: m.tflite\n  external:\n    options:\n      ids: [1, 2]\n", []string{"line 8: model.external.options.ids: want a string value, got a list"}},
		{"options a list", "capture:\n  replay:\n    path: frames\nmodel:\n  path: m.tflite\n  external:\n    options: [a]\n", []string{"line 7: model.external.options: want a mapping, got a list"}},
		{"option twice", "capture:\n  replay:\n    path: frames\nmodel:\n  path: m.tflite\n  external:\n    options:\n      a: 1\n      a: 2\n", []string{"line 9: model.external.options.a: duplicate key"}},
		// camera sources (capture.camera): a URI no pipeline comes from, by its key and line
		{"camera without uri", "model:\n  path: m.tflite\ncapture:\n  source: camera\n  camera:\n    width: 640\n    height: 480\n", []string{"capture.camera.uri: missing: csi://N"}},
		{"camera scheme", "model:\n  path: m.tflite\ncapture:\n  source: camera\n  camera:\n    uri: http://cam/1\n", []string{`line 6: capture.camera.uri: uri "http://cam/1": want csi://N`}},
		{"camera file uri", "model:\n  path: m.tflite\ncapture:\n  source: camera\n  camera:\n    uri: file:///nonexistent/frames\n", []string{"line 6: capture.camera.uri: /nonexistent/frames not found"}},
		{"csi sensor", "model:\n  path: m.tflite\ncapture:\n  source: camera\n  camera:\n    uri: csi://x\n    converter: nvvidconv\n", []string{"line 6: capture.camera.uri: uri csi://x: want csi://N with sensor N in 0..15"}},
		{"csi on videoconvert", "model:\n  path: m.tflite\ncapture:\n  source: camera\n  camera:\n    uri: csi://0\n", []string{"capture.camera.converter: uri csi://0: nvarguscamerasrc gives NVMM frames"}},
		{"v4l2 path", "model:\n  path: m.tflite\ncapture:\n  source: camera\n  camera:\n    uri: v4l2://video0\n", []string{"line 6: capture.camera.uri: uri v4l2://video0: want v4l2:///dev/videoN"}},
		{"v4l2 format", "model:\n  path: m.tflite\ncapture:\n  source: camera\n  camera:\n    uri: v4l2:///dev/video0\n    v4l2:\n      format: H264\n", []string{`capture.camera.v4l2.format: v4l2 format "H264": want "" (raw) or MJPG`}},
		{"rtsp transport", "model:\n  path: m.tflite\ncapture:\n  source: camera\n  camera:\n    uri: rtsp://127.0.0.1:8554/cam\n    rtsp:\n      transport: quic\n", []string{`capture.camera.rtsp.transport: rtsp transport "quic": want tcp or udp`}},
		{"gige feature", "model:\n  path: m.tflite\ncapture:\n  source: camera\n  camera:\n    uri: gige://127.0.0.1\n    gige:\n      features:\n        TriggerMode: On Line1\n", []string{`capture.camera.gige.features: gige feature "TriggerMode"="On Line1"`}},
		{"gst head with a sink", "model:\n  path: m.tflite\ncapture:\n  source: camera\n  camera:\n    uri: gst://videotestsrc ! fdsink\n", []string{"capture.camera.uri: uri gst://videotestsrc ! fdsink: give only the head"}},
		{"gst head with an empty link", "model:\n  path: m.tflite\ncapture:\n  source: camera\n  camera:\n    uri: gst://videotestsrc ! ! videoconvert\n", []string{`line 6: capture.camera.uri: uri gst://videotestsrc ! ! videoconvert: "! !" links to nothing`}},
		{"gst head with an open bin", "model:\n  path: m.tflite\ncapture:\n  source: camera\n  camera:\n    uri: gst://videotestsrc ! ( identity\n", []string{`line 6: capture.camera.uri: uri gst://videotestsrc ! ( identity: 1 bin(s) opened with "(" are not closed`}},
		{"gst head with a stray bin end", "model:\n  path: m.tflite\ncapture:\n  source: camera\n  camera:\n    uri: gst://videotestsrc ! identity )\n", []string{`line 6: capture.camera.uri: uri gst://videotestsrc ! identity ): a ")" closes no bin`}},
		{"gst head with an open quote", "model:\n  path: m.tflite\ncapture:\n  source: camera\n  camera:\n    uri: 'gst://videotestsrc ! textoverlay text=\"lot 7'\n", []string{`line 6: capture.camera.uri: uri gst://videotestsrc ! textoverlay text="lot 7: a quote (") is not closed`}},
		{"camera stall below zero", "model:\n  path: m.tflite\ncapture:\n  source: camera\n  camera:\n    uri: gst://videotestsrc\n    stall: -1s\n", []string{"line 7: capture.camera.stall: -1s out of range 0s..1m0s"}},
		{"camera backoff", "model:\n  path: m.tflite\ncapture:\n  source: camera\n  camera:\n    uri: gst://videotestsrc\n    backoff_min: 10s\n    backoff_max: 1s\n", []string{"line 8: capture.camera.backoff_max: 1s is below backoff_min 10s"}},
		{"camera half a size", "model:\n  path: m.tflite\ncapture:\n  source: camera\n  camera:\n    uri: gst://videotestsrc\n    width: 640\n", []string{"line 7: capture.camera.width: 640x0: give both width and height"}},
		{"camera stall", "model:\n  path: m.tflite\ncapture:\n  source: camera\n  camera:\n    uri: gst://videotestsrc\n    stall: 2ms\n", []string{"line 7: capture.camera.stall: 2ms: under 10ms"}},
		{"camera fps", "model:\n  path: m.tflite\ncapture:\n  source: camera\n  camera:\n    uri: gst://videotestsrc\n    fps: -1\n", []string{"line 7: capture.camera.fps: -1 out of range 0..1000"}},
		// a camera asked for a frame every 5 s, lost after 2 s of silence between every two frames
		{"camera slower than its stall", "model:\n  path: m.tflite\ncapture:\n  source: camera\n  camera:\n    uri: v4l2:///dev/video0\n    fps: 0.2\n", []string{"capture.camera.stall: 2s is not longer than the frame interval 5s (capture.camera.fps 0.2 frames/s)"}},
		// the same asked in a gst:// head's caps, against a stall of 3 s
		{"gst framerate slower than its stall", "model:\n  path: m.tflite\ncapture:\n  source: camera\n  camera:\n    uri: gst://videotestsrc ! video/x-raw,framerate=(fraction)1/4\n    stall: 3s\n", []string{"line 7: capture.camera.stall: 3s is not longer than the frame interval 4s (the framerate in capture.camera.uri 0.25 frames/s)"}},
		// no camera pipeline starts within 1 ms: check blamed the camera
		{"camera first frame too short", "model:\n  path: m.tflite\ncapture:\n  source: camera\n  camera:\n    uri: gst://videotestsrc\n    first_frame: 1ms\n", []string{"line 7: capture.camera.first_frame: 1ms: a camera pipeline takes longer than that to start (at least 500ms)"}},
		// the operators' view
		{"http address", base + "http:\n  address: localhost\n", []string{`line 7: http.address: "localhost": want host:port`}},
		{"http port", base + "http:\n  address: 127.0.0.1:99999\n", []string{`http.address: "127.0.0.1:99999": port "99999" is not 0..65535`}},
		{"heatmaps", base + "http:\n  heatmaps: 0\n", []string{"line 7: http.heatmaps: 0 out of range"}},
		{"host with a port", base + "http:\n  hosts: [line-pc, \"line-pc:8080\"]\n", []string{`line 7: http.hosts: entry 2 "line-pc:8080": want a host name`}},
		{"host as a URL", base + "http:\n  hosts:\n    - http://line-pc/\n", []string{`line 7: http.hosts: entry 1 "http://line-pc/": want a host name`}},
		{"host wildcard", base + "http:\n  hosts: [\"*.plant.example\"]\n", []string{`http.hosts: entry 1 "*.plant.example": want a host name (line-pc.plant.example) or an IP address, without scheme, port or wildcard`}},
		{"hosts not a list", base + "http:\n  hosts: line-pc\n", []string{`line 7: http.hosts: want a list of strings, got string "line-pc"`}},
		{"quota", base + "recordings:\n  quota_mb: 0\n", []string{"line 7: recordings.quota_mb: 0 out of range 1..1048576 MiB"}},
		{"max age", base + "recordings:\n  max_age: 1s\n", []string{"line 7: recordings.max_age: 1s: want 0 (no age limit) or at least 1m"}},
		{"near", base + "recordings:\n  near: 1.5\n", []string{"line 7: recordings.near: 1.5 out of range 0..1"}},
		{"dataset inside recordings", base + "recordings:\n  dir: /srv/rec\n  dataset: /srv/rec/ds\n", []string{"line 8: recordings.dataset: /srv/rec/ds and recordings.dir /srv/rec overlap"}},
		{"mqtt scheme", base + "mqtt:\n  broker: http://127.0.0.1:1883\n", []string{`line 7: mqtt.broker: "http://127.0.0.1:1883": scheme "http"`}},
		{"mqtt port", base + "mqtt:\n  broker: tcp://127.0.0.1\n", []string{`mqtt.broker: "tcp://127.0.0.1": want tcp://host:port`}},
		{"mqtt client id", base + "mqtt:\n  client_id: a very long client id of thirty\n", []string{"line 7: mqtt.client_id"}},
		{"mqtt topic", base + "mqtt:\n  topic: plant/#\n", []string{`line 7: mqtt.topic: "plant/#": want a topic prefix`}},
		{"mqtt decisions", base + "mqtt:\n  decisions: some\n", []string{`line 7: mqtt.decisions: "some" is not one of rejects, all, none`}},
		{"mqtt buffer", base + "mqtt:\n  buffer: 0\n", []string{"line 7: mqtt.buffer: 0 out of range"}},
		{"mqtt broker port", base + "mqtt:\n  broker: tcp://127.0.0.1:99999\n", []string{`line 7: mqtt.broker: "tcp://127.0.0.1:99999": port "99999" is not 1..65535`}},
		{"mqtt broker path", base + "mqtt:\n  broker: tcp://127.0.0.1:1883/x?y=1\n", []string{`line 7: mqtt.broker: "tcp://127.0.0.1:1883/x?y=1": want tcp://host:port or ssl://host:port, no path`}},
		{"mqtt broker topic", base + "mqtt:\n  topic: $SYS/adtrd\n", []string{`line 7: mqtt.topic: "$SYS/adtrd": want a topic prefix`}},
		// every MQTT string within MQTT 3.1.1's limits (field case 21): a topic that the
		// longest suffix takes past 65535 bytes, named without echoing 70,000 bytes
		{"mqtt topic too long", base + "mqtt:\n  topic: " + strings.Repeat("t", 70000) + "\n", []string{`line 7: mqtt.topic: "tttttttttttttttttttttttttttttttttttttttt"... (70000 bytes): MQTT allows 65535 bytes in a topic, 65522 with the suffix /availability`}},
		// the same at the exact edge: 65523 bytes and "/availability" make 65536
		{"mqtt topic one byte over", base + "mqtt:\n  topic: " + strings.Repeat("t", 65523) + "\n", []string{"(65523 bytes): MQTT allows 65535 bytes in a topic, 65522"}},
		// a control character: mosquitto drops the connection at the CONNECT (the will's topic)
		{"mqtt topic tab", base + "mqtt:\n  topic: \"line\\t3\"\n", []string{`line 7: mqtt.topic: "line\t3": control character U+0009 at byte 4`}},
		// U+0000 is never allowed in an MQTT string
		{"mqtt topic nul", base + "mqtt:\n  topic: \"line\\03\"\n", []string{`mqtt.topic: "line\x003": a NUL byte at byte 4`}},
		// a non-character
		{"mqtt topic non-character", base + "mqtt:\n  topic: \"line\\uFFFF\"\n", []string{`mqtt.topic: "line\uffff": non-character U+FFFF at byte 4`}},
		// a client id past 23 bytes, named without echoing all of it
		{"mqtt client id too long", base + "mqtt:\n  client_id: " + strings.Repeat("c", 70000) + "\n", []string{`line 7: mqtt.client_id: "cccccccccccccccccccccccccccccccccccccccc"... (70000 bytes): want 1..23 printable ASCII`}},
		// a client id with a space
		{"mqtt client id space", base + "mqtt:\n  client_id: line 3\n", []string{`line 7: mqtt.client_id: "line 3": want 1..23 printable ASCII`}},
		// a username past MQTT's 65535 bytes, not echoed
		{"mqtt username too long", base + "mqtt:\n  username: " + strings.Repeat("u", 70000) + "\n", []string{"line 7: mqtt.username: 70000 bytes: MQTT allows 65535"}},
		// a username with a newline (a pasted line end)
		{"mqtt username newline", base + "mqtt:\n  username: \"line3\\n\"\n", []string{"line 7: mqtt.username: control character U+000A at byte 5"}},
		// a fraction where a whole number goes (yaml.v3 would truncate it)
		{"fraction for an int", base + "recordings:\n  quota_mb: 1.5\n", []string{"line 7: recordings.quota_mb: want a whole number, got 1.5"}},
		{"fraction for the queue", "model:\n  path: m.tflite\ncapture:\n  queue: 2.5\n", []string{"line 4: capture.queue: want a whole number, got 2.5"}},
		// a name-valued key given a number, a list or a mapping: its names, not "an integer"
		{"number for a name", "model:\n  path: m.tflite\ncapture:\n  replay:\n    fit: 1.5\n", []string{`line 5: capture.replay.fit: "1.5" is not one of resize, crop`}},
		{"list for a name", "model:\n  path: m.tflite\ncapture:\n  camera:\n    converter: [videoconvert]\n", []string{"line 5: capture.camera.converter: want a name, got a list"}},
		{"mapping for a name", "model:\n  path: m.tflite\nfail_safe: {a: b}\n", []string{"line 3: fail_safe: want a name, got a mapping"}},
		// a list for a string: no stray quotes
		{"list for a string", "model:\n  path: m.tflite\n  engine: [tflite]\n", []string{"line 3: model.engine: want a string, got a list"}},
		// LiteRT's keys: an unknown accelerator or precision, a cache path the accelerator's TOML cannot carry
		{"litert accelerator", "model:\n  path: m.tflite\n  litert:\n    accelerator: npu\n", []string{`line 4: model.litert.accelerator: "npu" is not one of cpu, gpu`}},
		{"litert precision", "model:\n  path: m.tflite\n  litert:\n    precision: int8\n", []string{`line 4: model.litert.precision: "int8" is not one of fp32, fp16`}},
		{"litert cache quote", "model:\n  path: m.tflite\n  litert:\n    cache: '/var/a\"b'\n", []string{`line 4: model.litert.cache: "/var/a\"b": a folder path without double quotes`}},
		{"litert cache nul", "model:\n  path: m.tflite\n  litert:\n    cache: \"/var/a\\0b\"\n", []string{`line 4: model.litert.cache: "/var/a\x00b": a folder path without double quotes`}},
		// broken YAML
		{"syntax", "model: [\n", []string{"(syntax)"}},
		// several problems: all of them, not only the first
		{"all at once", base + "treshold: 3\nfail_safe: maybe\nlog:\n  level: loud\n", []string{"line 6: treshold", "line 7: fail_safe", "line 9: log.level"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Load(writeCfg(t, tc.body))
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Fatalf("not one line: %q", msg)
			}
			at := 0
			for _, w := range tc.want {
				i := strings.Index(msg[at:], w)
				if i < 0 {
					t.Fatalf("%q missing (in order) from %q", w, msg)
				}
				at += i
			}
			var list *config.Errors
			if !errors.As(err, &list) || list.File == "" {
				t.Fatalf("not an *Errors naming the file: %v", err)
			}
		})
	}
}

func TestJetsonLineConfig(t *testing.T) {
	p := writeCfg(t, base+`output:
  backend: gpiochip
  reject: {line: PQ.05, pulse: 30ms, delay_counts: 1200}
  alarm: {chip: tegra234-gpio, offset: 106, active_low: true}
input:
  trigger: {line: PN.01, pull: up, active_low: true, debounce: 2ms}
  encoder: {line: PAC.06}
fail_safe: alarm
`)
	c, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	r := c.Output.Reject
	if r.Line != "PQ.05" || r.DelayCounts != 1200 || time.Duration(r.Pulse) != 30*time.Millisecond {
		t.Fatalf("reject %+v", r)
	}
	if a := c.Output.Alarm; a.Offset == nil || *a.Offset != 106 || !a.ActiveLow || a.Chip != "tegra234-gpio" {
		t.Fatalf("alarm %+v", a)
	}
	if tr := c.Input.Trigger; tr.Pull != config.PullUp || !tr.ActiveLow || time.Duration(tr.Debounce) != 2*time.Millisecond {
		t.Fatalf("trigger %+v", tr)
	}
	if c.FailSafe != config.FailSafeAlarm || c.Output.Ready.Wired() || !c.Input.Encoder.Wired() {
		t.Fatalf("%+v", c)
	}
}

// Whatever a config file holds: no panic, and either a config or one line of problems
// wrapping ErrInvalid, never a NaN accepted. Seeds: the annotated example and the
// shapes field cases found (aliases, merge keys, NaN, non-string options).
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join(testlib.Root(), "config", "example.yaml")); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		base, "model: {path: 3}\nthreshold: -1\n", "capture:\n  replay:\n    fps: .inf\n", "threshold: .nan\n",
		"output:\n  alarm: &p\n    active_low: true\n  ready: *p\n", "output:\n  ready:\n    <<: {line: A}\n",
		"model:\n  external:\n    options:\n      a: {b: c}\n", "a: [\n", "- 1\n", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := config.Decode("fuzz.yaml", b) // no file is touched while fuzzing
		if err != nil {
			if !errors.Is(err, config.ErrInvalid) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("not one line wrapping ErrInvalid: %q", err)
			}
			return
		}
		if c.Threshold != c.Threshold || c.Capture.Replay.FPS != c.Capture.Replay.FPS {
			t.Fatalf("NaN accepted: %+v", c)
		}
	})
}

// Decode checks values and touches no file; Parse adds the file step (the files a
// config names must exist), with both kinds of problem in one list.
func TestDecodeTouchesNoFile(t *testing.T) {
	dir := t.TempDir()
	b := []byte("model:\n  path: nowhere.tflite\ncapture:\n  replay:\n    path: frames\nthreshold: -1\n")
	_, err := config.Decode(filepath.Join(dir, "a.yaml"), b)
	if err == nil || strings.Contains(err.Error(), "not found") || !strings.Contains(err.Error(), "threshold") {
		t.Fatalf("Decode: %v", err)
	}
	_, err = config.Parse(filepath.Join(dir, "a.yaml"), b)
	if err == nil || !strings.Contains(err.Error(), "nowhere.tflite not found") || !strings.Contains(err.Error(), "threshold") {
		t.Fatalf("Parse: %v", err)
	}
}

// The README's complete Jetson config is valid (paths resolve against the repository,
// so the demo model and frames stand in for the line's).
func TestReadmeJetsonConfigIsValid(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testlib.Root(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "### A Jetson Orin Nano")
	if !ok {
		t.Fatal("README lost its Jetson config section")
	}
	_, after, _ = strings.Cut(after, "```yaml\n")
	block, _, _ := strings.Cut(after, "```")
	c, err := config.Parse(filepath.Join(testlib.Root(), "jetson.yaml"), []byte(block))
	if err != nil {
		t.Fatal(err)
	}
	wired := 0
	for _, r := range c.Roles() {
		if r.Pin.Wired() {
			wired++
		}
	}
	if c.Output.Backend != config.BackendGPIOChip || wired != 9 {
		t.Fatalf("backend %v, %d of 9 pins wired", c.Output.Backend, wired)
	}
}

// A non-finite value is one problem, not also an "out of range" one: the key keeps its
// default after the refusal, so later checks see a sane value.
func TestNonFiniteIsOneProblem(t *testing.T) {
	for _, body := range []string{
		base + "threshold: -.inf\n", // would also be "negative"
		"model:\n  path: m.tflite\ncapture:\n  replay:\n    path: frames\n    fps: .inf\n", // would also be out of range
	} {
		_, err := config.Load(writeCfg(t, body))
		var list *config.Errors
		if !errors.As(err, &list) || len(list.Problems) != 1 || !strings.Contains(list.Problems[0].Msg, "not a finite number") {
			t.Errorf("%q: %v, want exactly one 'not a finite number' problem", body, err)
		}
	}
}

// model.external.options is decoded pair by pair: 40,000 keys (7-9 s before, quadratic)
// parse, and every value arrives.
func TestManyOptionsParse(t *testing.T) {
	var b strings.Builder
	b.WriteString("capture:\n  replay:\n    path: frames\nmodel:\n  path: m.tflite\n  external:\n    options:\n")
	for i := 0; i < 40000; i++ {
		fmt.Fprintf(&b, "      k%d: v%d\n", i, i)
	}
	c, err := config.Load(writeCfg(t, b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Model.External.Options) != 40000 || c.Model.External.Options["k39999"] != "v39999" {
		t.Fatalf("%d options", len(c.Model.External.Options))
	}
}

// Field case 11 A: a config path that names a FIFO (or a device: a hung mount reads
// alike) is refused at once, never read: `adtrd check` and start-up used to hang.
func TestConfigThatIsNotARegularFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "adtrd.yaml")
	if err := testlib.Mkfifo(p); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := config.Load(p); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), p+": not a regular file (a FIFO)") {
			t.Fatalf("err %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Load blocked on a FIFO")
	}
}

// Token and password files: one line of at least 16 characters that only the owner
// can read; the error names the file and never shows the secret.
func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, body string
		mode       os.FileMode
		want       string // "" : accepted
	}{
		{"good", "0123456789abcdef\n", 0o600, ""},                                    // a trailing newline is fine
		{"group readable", "0123456789abcdef", 0o640, "readable by group or others"}, // refused whatever it holds
		{"world readable", "0123456789abcdef", 0o644, "readable by group or others"},
		{"short", "secret", 0o600, "under 16 characters"},
		{"empty", "\n", 0o600, "empty"},
		{"two lines", "0123456789abcdef\nsecond-line-here", 0o600, "more than one line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(p, []byte(tc.body), tc.mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(p, tc.mode) // umask may have dropped bits
			s, err := config.ReadSecret(p)
			if tc.want == "" {
				if err != nil || s != strings.TrimSpace(tc.body) {
					t.Fatalf("%q, %v", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) || strings.Contains(err.Error(), "0123456789abcdef") {
				t.Fatalf("err %v, want %q naming the file and not the secret", err, tc.want)
			}
		})
	}
	if _, err := config.ReadSecret(filepath.Join(dir, "none")); err == nil || !strings.Contains(err.Error(), "none: no such file") {
		t.Fatalf("missing file: %v", err)
	}
	// A config naming a world-readable token file is refused at load: the daemon
	// does not start with it.
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("0123456789abcdef"), 0o644)
	os.Chmod(tok, 0o644)
	os.WriteFile(filepath.Join(dir, "m.tflite"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "m.tflite.json"), nil, 0o644)
	os.Mkdir(filepath.Join(dir, "frames"), 0o755)
	_, err := config.Parse(filepath.Join(dir, "a.yaml"), []byte(base+"http:\n  token_file: token\n"))
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "line 7: http.token_file: "+tok+": mode -rw-r--r--: readable by group or others") {
		t.Fatalf("world-readable token: %v", err)
	}
}

// The MQTT limits are edges, not guesses: a topic of 65522 bytes and a 23-byte client
// id are MQTT's largest once the publisher's suffix is added, and are accepted.
func TestMQTTStringsAtTheirLimits(t *testing.T) {
	body := base + "mqtt:\n  topic: " + strings.Repeat("t", 65535-len(config.MQTTLongestSuffix)) + "\n  client_id: " + strings.Repeat("c", 23) + "\n  username: " + strings.Repeat("u", 65535) + "\n"
	if _, err := config.Decode("edge.yaml", []byte(body)); err != nil {
		t.Fatal(err)
	}
}
