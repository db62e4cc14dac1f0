// Package libpath is where the engines look for their runtime's shared library when
// the config names none, one rule for all of them.
package libpath

import (
	"os"
	"path/filepath"
)

// Search lists where a library called name is looked for: beside the binary, in
// ../lib/adtrd from it (the .deb's layout wherever its tree is unpacked),
// /usr/lib/adtrd, then the dynamic loader's own search (the bare name, last).
func Search(name string) []string {
	var out []string
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		out = append(out, filepath.Join(dir, name), filepath.Join(dir, "..", "lib", "adtrd", name))
	}
	return append(out, filepath.Join("/usr/lib/adtrd", name), name)
}

// Find is the configured path when there is one, else the first of Search(name) that
// exists, else the bare name for the loader to look up.
func Find(configured, name string) string {
	if configured != "" {
		return configured
	}
	search := Search(name)
	for _, p := range search[:len(search)-1] {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return name
}
