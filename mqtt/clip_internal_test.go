package mqtt

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// A topic as long as MQTT allows is logged as its first 200 bytes and its length
// (the "mqtt: connected" line carried all 65,522 bytes); short topics whole, and a
// cut never splits a UTF-8 character.
func TestClipTopicForTheLog(t *testing.T) {
	for _, tc := range []struct {
		name, topic, want string
	}{
		// short: whole
		{"short", "plant/line1", "plant/line1"},
		// the longest a config allows: cut, with its length
		{"longest", strings.Repeat("a", 65522), strings.Repeat("a", 200) + "... (65522 bytes)"},
		// a two-byte character across byte 200: cut before it
		{"utf-8", strings.Repeat("a", 199) + strings.Repeat("é", 10), strings.Repeat("a", 199) + "... (219 bytes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := clip(tc.topic)
			if got != tc.want || !utf8.ValidString(got) {
				t.Fatalf("clip: %q, want %q", got, tc.want)
			}
		})
	}
}
