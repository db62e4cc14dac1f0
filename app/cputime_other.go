//go:build !unix

package app

import "time"

// cpuTime is 0 where getrusage is not there: the bench reports no CPU per frame.
func cpuTime() time.Duration { return 0 }
