// Command maprun prints the demo model's raw int8 map for each frame, one JSON line per
// frame, so the release test can compare the arm64 library's maps (under qemu-user)
// with golden.json bit for bit. Built by the test only (testdata is outside ./...).
//
//	maprun LIBRARY MODEL FRAME...
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/tflite"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "maprun:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("usage: maprun LIBRARY MODEL FRAME...")
	}
	lib, err := tflite.Open(args[0])
	if err != nil {
		return err
	}
	defer lib.Close()
	// As the daemon runs it by default (delegate: xnnpack).
	it, err := lib.NewInterpreter(args[1], tflite.Options{Threads: 2, XNNPACK: true})
	if err != nil {
		return err
	}
	defer it.Close()
	in := it.Inputs()[0].Bytes()
	enc := json.NewEncoder(os.Stdout)
	for _, f := range args[2:] {
		px, err := capture.LoadRGB(f, capture.Size{W: 224, H: 224}, capture.FitResize)
		if err != nil {
			return err
		}
		copy(in, px)
		if err := it.Invoke(); err != nil {
			return err
		}
		out := it.Outputs()[0].Bytes()
		m := make([]int, len(out))
		for i, b := range out {
			m[i] = int(int8(b))
		}
		if err := enc.Encode(struct {
			File string `json:"file"`
			Map  []int  `json:"map"`
		}{filepath.Base(f), m}); err != nil {
			return err
		}
	}
	return nil
}
