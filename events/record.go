package events

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// Decision is what happens to a part.
type Decision int

const (
	Pass          Decision = iota
	Reject                 // the reject output fires at the part's time
	Alarm                  // fail-safe alarm: the part goes through and the alarm is raised
	DecisionCount          // how many decisions there are (not one)
)

func (d Decision) String() string {
	switch d {
	case Pass:
		return "pass"
	case Reject:
		return "reject"
	case Alarm:
		return "alarm"
	}
	return fmt.Sprintf("decision(%d)", int(d))
}

// Reason says why a decision was taken.
type Reason int

const (
	ByScore      Reason = iota // the score against the threshold
	BadFrame                   // the frame could not be read: fail-safe rule
	InferFailure               // inference failed: fail-safe rule
	ReasonCount                // how many reasons there are (not one)
)

func (r Reason) String() string {
	switch r {
	case ByScore:
		return "score"
	case BadFrame:
		return "fail-safe: bad frame"
	case InferFailure:
		return "fail-safe: inference error"
	}
	return fmt.Sprintf("reason(%d)", int(r))
}

// Record is one frame's decision.
type Record struct {
	Seq       uint64
	Part      uint64
	Gen       uint64 // the config generation that decided it
	Model     string // that generation's model sha256
	Name      string
	Score     float64
	Threshold float64
	Decision  Decision
	Reason    Reason
	Err       error
	Wait      time.Duration // capture to start of inference (time in the queue)
	Infer     time.Duration
	Scoring   time.Duration
}

// Stats are counters, safe to read while running.
type Stats struct {
	// CameraErrors counts losses of the camera (each outage once) and a source's end
	// by an error.
	Frames, Rejects, Dropped, BadFrames, InferErrors, CameraErrors atomic.Uint64
	// Unmatched: frames of a triggered camera that fell in no waiting part's window.
	Unmatched atomic.Uint64
	// Skipped: frames of an untriggered paced source (a camera) that became no part
	// because inference was behind: the queue was full, or the frame had waited so
	// long that its decision could not reach the ejector in time. Without a trigger
	// the camera's rate is not the parts' rate, so these get no fail-safe pulse.
	Skipped atomic.Uint64
	// Undecided: frames left in the queue when the run stopped.
	Undecided atomic.Uint64
	// SourceDropped: frames the source itself read and dropped before they reached
	// the queue (a camera whose frame buffers were all held), as the source counts
	// them, copied when the counters are read (not on the frame path).
	SourceDropped atomic.Uint64
	// Decisions counts decided frames by [Decision][Reason] (what /metrics exports).
	Decisions [DecisionCount][ReasonCount]atomic.Uint64
}

// Round4 rounds a score or threshold to 4 decimals for records and logs: one map
// quantisation step is about 0.06 of score, so more digits say nothing a reader can
// use. Decisions compare the unrounded values.
func Round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }

// ReloadStatus is what the status API and metrics show about reloads.
type ReloadStatus struct {
	Generation                 uint64
	ModelSHA                   string
	Applied, Unchanged, Failed uint64
	LastError                  string
	LastErrorAt                time.Time
}

// GenInfo is what consumers show of the running generation: its number, model and
// threshold (a reload changes all three).
type GenInfo struct {
	N         uint64
	ModelSHA  string
	Threshold float64
	// ModelPath and ModelVersion are the running generation's (model.path, the
	// metadata's model_version): a reload may change both.
	ModelPath, ModelVersion string
	// Engine is model.engine; Placement, where the engine says it runs the graph's
	// ops ("" when it does not say: engine.Placer).
	Engine, Placement string
}
