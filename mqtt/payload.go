package mqtt

import (
	"math"
	"path/filepath"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/adtrd/adtrd/daemon"
)

// The payloads are written by hand rather than by encoding/json: one allocation a
// message on the bus consumer's path, a fixed field order, and a non-finite score
// (which encoding/json refuses) written as null instead of losing the message.
// Every payload of a topic has every field of that topic, zero when it does not
// apply, so consumers can rely on the shape. The field names are documented on
// Publisher; changing one breaks the plant's dashboards.

// state is what the state topic reports.
type state struct {
	cameraLost bool
	alarm      bool
	gen        uint64 // 0: not known yet (no decision or reload seen)
}

// Fault kinds.
const (
	faultFailSafe     = "fail-safe"
	faultCameraLost   = "camera lost"
	faultReloadFailed = "reload failed"
)

// State changes.
const (
	changeConnect    = "connect"
	changeCamera     = "camera"
	changeAlarm      = "alarm"
	changeGeneration = "generation"
)

// decisionPayload: {"time","host","seq","part","frame","score","threshold",
// "decision","reason","generation","model","err"}.
func decisionPayload(host string, e daemon.Event) []byte {
	r := e.Record
	errText := ""
	if r.Err != nil {
		errText = r.Err.Error()
	}
	o := object(make([]byte, 0, 288+len(host)+len(r.Model)+len(errText)))
	o.time("time", e.Time)
	o.str("host", host)
	o.uint("seq", r.Seq)
	o.uint("part", r.Part)
	o.str("frame", filepath.Base(r.Name))
	o.float("score", daemon.Round4(r.Score))
	o.float("threshold", daemon.Round4(r.Threshold))
	o.str("decision", r.Decision.String())
	o.str("reason", r.Reason.String())
	o.uint("generation", r.Gen)
	o.str("model", r.Model)
	o.str("err", errText)
	return o.close()
}

// faultPayload: {"time","host","kind","part","cause","err","generation"}.
func faultPayload(host string, at time.Time, kind string, part uint64, cause, errText string, gen uint64) []byte {
	o := object(make([]byte, 0, 192+len(host)+len(cause)+len(errText)))
	o.time("time", at)
	o.str("host", host)
	o.str("kind", kind)
	o.uint("part", part)
	o.str("cause", cause)
	o.str("err", errText)
	o.uint("generation", gen)
	return o.close()
}

// statePayload: {"time","host","change","camera","alarm","generation"}.
func statePayload(host string, at time.Time, change string, s state) []byte {
	camera := "up"
	if s.cameraLost {
		camera = "lost"
	}
	o := object(make([]byte, 0, 160+len(host)))
	o.time("time", at)
	o.str("host", host)
	o.str("change", change)
	o.str("camera", camera)
	o.bool("alarm", s.alarm)
	o.uint("generation", s.gen)
	return o.close()
}

// obj appends one JSON object's members.
type obj []byte

func object(b []byte) obj { return append(b, '{') }

func (o *obj) key(k string) {
	if len(*o) > 1 {
		*o = append(*o, ',')
	}
	*o = appendString(*o, k)
	*o = append(*o, ':')
}

func (o *obj) str(k, v string) { o.key(k); *o = appendString(*o, v) }

func (o *obj) uint(k string, v uint64) { o.key(k); *o = strconv.AppendUint(*o, v, 10) }

func (o *obj) bool(k string, v bool) { o.key(k); *o = strconv.AppendBool(*o, v) }

// float writes null for NaN and infinities, which JSON cannot carry.
func (o *obj) float(k string, v float64) {
	o.key(k)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		*o = append(*o, "null"...)
		return
	}
	*o = strconv.AppendFloat(*o, v, 'f', -1, 64)
}

// time writes RFC 3339 with nanoseconds in UTC: brokers serve plants across time
// zones, and a zero time (an event made without one) is the time of writing.
func (o *obj) time(k string, t time.Time) {
	if t.IsZero() {
		t = time.Now()
	}
	o.key(k)
	*o = append(*o, '"')
	*o = t.UTC().AppendFormat(*o, time.RFC3339Nano)
	*o = append(*o, '"')
}

func (o *obj) close() []byte { return append(*o, '}') }

// appendString writes s as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
