package config

import (
	"reflect"
	"strings"
)

// liveKeys can change while the line runs: a reload builds a new generation with
// them. Every other key needs a restart, and a reload that changes one is refused.
var liveKeys = []string{
	"threshold",
	"model",               // every model key: the interpreter is rebuilt and warmed up
	"fail_safe",           // for parts stamped after the swap
	"output.reject.pulse", // for pulses started after the swap
	"output.reject.delay", // for parts stamped after the swap
	"log.level",
}

// LiveKeys lists the keys (and key prefixes) a reload applies.
func LiveKeys() []string { return append([]string(nil), liveKeys...) }

// Live says whether a key can change without a restart.
func Live(key string) bool {
	for _, p := range liveKeys {
		if key == p || strings.HasPrefix(key, p+".") {
			return true
		}
	}
	return false
}

// Diff lists the keys whose values differ between a and b.
func Diff(a, b Config) []string {
	var out []string
	diff(reflect.ValueOf(a), reflect.ValueOf(b), "", &out)
	return out
}

// RestartKeys lists the keys that differ and cannot change live.
func RestartKeys(a, b Config) []string {
	var out []string
	for _, k := range Diff(a, b) {
		if !Live(k) {
			out = append(out, k)
		}
	}
	return out
}

func diff(a, b reflect.Value, prefix string, out *[]string) {
	if a.Kind() != reflect.Struct || a.Type() == reflect.TypeOf(Duration(0)) {
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, prefix)
		}
		return
	}
	t := a.Type()
	for i := 0; i < t.NumField(); i++ {
		if !t.Field(i).IsExported() {
			continue // bookkeeping (Config.lines), not a key
		}
		parts := strings.Split(t.Field(i).Tag.Get("yaml"), ",")
		key := prefix
		if !(len(parts) > 1 && parts[1] == "inline") {
			key = join(prefix, parts[0])
		}
		diff(a.Field(i), b.Field(i), key, out)
	}
}
