//go:build !unix

package capture_test

import "errors"

func mkfifo(string) error { return errors.ErrUnsupported }
