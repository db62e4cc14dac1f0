package app

import (
	"errors"
	"testing"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/gpio"
)

// Role names live in config.Roles; slot must place every one of them, inputs as
// inputs and outputs as outputs, each in its own field.
func TestEveryRoleHasASlot(t *testing.T) {
	cfg := config.Default()
	var opt gpio.Options
	seen := map[any]string{}
	for _, r := range cfg.Roles() {
		out, in, err := slot(&opt, r.Key)
		if err != nil {
			t.Fatalf("%s: %v", r.Key, err)
		}
		if (out != nil) == (in != nil) || (in != nil) != r.Input {
			t.Fatalf("%s: out %v in %v, input role %v", r.Key, out != nil, in != nil, r.Input)
		}
		var p any = out
		if in != nil {
			p = in
		}
		if other, dup := seen[p]; dup {
			t.Fatalf("%s and %s share a slot", r.Key, other)
		}
		seen[p] = r.Key
	}
	if _, _, err := slot(&opt, "output.siren"); !errors.Is(err, ErrRole) {
		t.Fatalf("unknown role: %v", err)
	}
}
