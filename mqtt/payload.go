package mqtt

import (
	"encoding/json"
	"math"
	"path/filepath"
	"time"

	"github.com/adtrd/adtrd/events"
)

// The payloads are encoding/json of the structs below: their field order is the
// messages' and every field is always present (zero when it does not apply), so
// consumers can rely on the shape. The field names are documented on Publisher and
// in the README; changing one breaks the plant's dashboards.

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

type decisionMsg struct {
	Time       string   `json:"time"`
	Host       string   `json:"host"`
	Seq        uint64   `json:"seq"`
	Part       uint64   `json:"part"`
	Frame      string   `json:"frame"`
	Score      *float64 `json:"score"` // null when not finite, which JSON cannot carry
	Threshold  *float64 `json:"threshold"`
	Decision   string   `json:"decision"`
	Reason     string   `json:"reason"`
	Generation uint64   `json:"generation"`
	Model      string   `json:"model"`
	Err        string   `json:"err"`
}

type faultMsg struct {
	Time       string `json:"time"`
	Host       string `json:"host"`
	Kind       string `json:"kind"`
	Part       uint64 `json:"part"`
	Cause      string `json:"cause"`
	Err        string `json:"err"`
	Generation uint64 `json:"generation"`
}

type stateMsg struct {
	Time       string `json:"time"`
	Host       string `json:"host"`
	Change     string `json:"change"`
	Camera     string `json:"camera"`
	Alarm      bool   `json:"alarm"`
	Generation uint64 `json:"generation"`
}

// decisionPayload: {"time","host","seq","part","frame","score","threshold",
// "decision","reason","generation","model","err"}.
func decisionPayload(host string, e events.Event) []byte {
	r := e.Record
	m := decisionMsg{Time: stamp(e.Time), Host: host, Seq: r.Seq, Part: r.Part, Frame: filepath.Base(r.Name),
		Score: finite(events.Round4(r.Score)), Threshold: finite(events.Round4(r.Threshold)),
		Decision: r.Decision.String(), Reason: r.Reason.String(), Generation: r.Gen, Model: r.Model}
	if r.Err != nil {
		m.Err = r.Err.Error()
	}
	return marshal(m)
}

// faultPayload: {"time","host","kind","part","cause","err","generation"}.
func faultPayload(host string, at time.Time, kind string, part uint64, cause, errText string, gen uint64) []byte {
	return marshal(faultMsg{Time: stamp(at), Host: host, Kind: kind, Part: part, Cause: cause, Err: errText, Generation: gen})
}

// statePayload: {"time","host","change","camera","alarm","generation"}.
func statePayload(host string, at time.Time, change string, s state) []byte {
	camera := "up"
	if s.cameraLost {
		camera = "lost"
	}
	return marshal(stateMsg{Time: stamp(at), Host: host, Change: change, Camera: camera, Alarm: s.alarm, Generation: s.gen})
}

// marshal cannot fail on these structs (strings, integers, finite floats and
// bools); invalid UTF-8 in a frame name or error becomes U+FFFD.
func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{"err":"unencodable message"}`)
	}
	return b
}

func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// stamp is RFC 3339 with nanoseconds in UTC: brokers serve plants across time zones,
// and a zero time (an event made without one) is the time of writing.
func stamp(t time.Time) string {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC().Format(time.RFC3339Nano)
}
