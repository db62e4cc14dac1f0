package mqtt

import (
	"slices"
	"testing"
)

func TestRing(t *testing.T) {
	ids := func(r *ring) []uint64 {
		var out []uint64
		for id := uint64(0); ; id++ {
			m, ok := r.from(id)
			if !ok {
				return out
			}
			out = append(out, m.id)
			id = m.id
		}
	}
	for _, tc := range []struct {
		name    string
		max     int
		push    int
		ack     []uint64
		want    []uint64
		dropped int
	}{
		{"fits", 4, 3, nil, []uint64{1, 2, 3}, 0},
		{"full: the oldest go", 4, 7, nil, []uint64{4, 5, 6, 7}, 3},
		{"acknowledged oldest first", 4, 3, []uint64{1, 2}, []uint64{3}, 0},
		{"an acknowledgement of a dropped message removes nothing", 2, 4, []uint64{1}, []uint64{3, 4}, 2},
		{"grows past its first 16 and wraps", 20, 45, []uint64{26, 27}, []uint64{28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45}, 25},
		{"one", 1, 3, nil, []uint64{3}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRing(tc.max)
			dropped := 0
			for range tc.push {
				if r.push(topicDecision, nil) {
					dropped++
				}
			}
			for _, id := range tc.ack {
				r.ack(id)
			}
			if got := ids(&r); !slices.Equal(got, tc.want) || r.n != len(tc.want) || dropped != tc.dropped {
				t.Errorf("ids %v (n %d), dropped %d; want %v, dropped %d", got, r.n, dropped, tc.want, tc.dropped)
			}
			if m, ok := r.from(r.nextID); ok {
				t.Errorf("from(next id) = %d, want none", m.id)
			}
		})
	}
}
