package daemon

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/adtrd/adtrd/gpio"
)

// Frames go to parts by time, on a fake clock: a missing, extra, late or bunched
// frame never moves a later frame to another part. Window: 20ms before the trigger
// to 100ms after it; triggers every 200ms unless the row says otherwise.
func TestMatcherNeverShiftsFramesToAnotherPart(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	for _, tc := range []struct {
		name     string
		triggers []int // ms
		frames   []int // capture times, ms
		want     string
	}{
		// one frame per part, 30ms after each trigger
		{"in step", []int{0, 200, 400}, []int{30, 230, 430}, "1 2 3 | no frame: - | unmatched: 0"},
		// part 2's frame is lost: part 2 gets none, part 3 still gets its own
		{"dropped frame", []int{0, 200, 400}, []int{30, 430}, "1 3 | no frame: 2 | unmatched: 0"},
		// a frame between parts (the camera fired twice): it belongs to no part
		{"extra frame", []int{0, 200, 400}, []int{30, 130, 230, 430}, "1 2 3 | no frame: - | unmatched: 1"},
		// part 1's frame comes 150ms after its trigger: too late for 1, too early for 2
		{"late frame", []int{0, 200, 400}, []int{150, 230, 430}, "2 3 | no frame: 1 | unmatched: 1"},
		// three parts within 20ms, their frames bunched after them: each its own
		{"burst", []int{0, 10, 20, 400}, []int{35, 40, 45, 430}, "1 2 3 4 | no frame: - | unmatched: 0"},
		// a frame just before its trigger (a camera triggered by the same edge, with a
		// latency set a little high): still that part's
		{"frame before its trigger", []int{0, 200}, []int{-10, 190}, "1 2 | no frame: - | unmatched: 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMatcher(20*time.Millisecond, 100*time.Millisecond, 8)
			var got, lost []string
			unmatched := 0
			expired := func(p gpio.Part) { lost = append(lost, fmt.Sprint(p.ID)) }
			// events in time order: a trigger at its time, a frame when it arrives
			// through the pipe, 15ms after its capture time
			const transit = 15
			ti, fi := 0, 0
			for ti < len(tc.triggers) || fi < len(tc.frames) {
				if fi == len(tc.frames) || ti < len(tc.triggers) && tc.triggers[ti] <= tc.frames[fi]+transit {
					m.add(gpio.Part{ID: uint64(ti + 1), At: ms(tc.triggers[ti])})
					ti++
					continue
				}
				if id, _, ok := m.frame(ms(tc.frames[fi]), expired); ok {
					got = append(got, fmt.Sprint(id))
				} else {
					unmatched++
				}
				fi++
			}
			m.expire(ms(10000), 50*time.Millisecond, expired)
			s := fmt.Sprintf("%s | no frame: %s | unmatched: %d", join(got), join(lost), unmatched)
			if s != tc.want {
				t.Fatalf("got %q, want %q", s, tc.want)
			}
		})
	}
}

func join(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	out := ""
	for i, v := range s {
		if i > 0 {
			out += " "
		}
		out += v
	}
	return out
}

// The waiting parts are bounded: the oldest is given up when the queue is full, and
// the clock gives up parts whose window (and grace) has passed.
func TestMatcherIsBoundedAndExpires(t *testing.T) {
	t0 := time.Now()
	m := newMatcher(0, 100*time.Millisecond, 2)
	m.add(gpio.Part{ID: 1, At: t0})
	m.add(gpio.Part{ID: 2, At: t0.Add(10 * time.Millisecond)})
	if p, ok := m.add(gpio.Part{ID: 3, At: t0.Add(20 * time.Millisecond)}); !ok || p.ID != 1 {
		t.Fatalf("full queue gave up %v %v, want part 1", p, ok)
	}
	if at, ok := m.next(); !ok || !at.Equal(t0.Add(110*time.Millisecond)) {
		t.Fatalf("next %v %v", at, ok)
	}
	var lost []uint64
	m.expire(t0.Add(150*time.Millisecond), 50*time.Millisecond, func(p gpio.Part) { lost = append(lost, p.ID) })
	if len(lost) != 0 {
		t.Fatalf("expired %v within the grace", lost)
	}
	m.expire(t0.Add(165*time.Millisecond), 50*time.Millisecond, func(p gpio.Part) { lost = append(lost, p.ID) })
	if !slices.Equal(lost, []uint64{2}) {
		t.Fatalf("expired %v, want [2]", lost)
	}
	m.all(func(p gpio.Part) { lost = append(lost, p.ID) })
	if !slices.Equal(lost, []uint64{2, 3}) || m.n != 0 {
		t.Fatalf("all: %v, %d left", lost, m.n)
	}
}
