// Command adtrd is the line-side anomaly rejection daemon: `adtrd run` scores frames
// and pulses the reject output; `adtrd check` validates a config without running.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/adtrd/adtrd/app"
	"github.com/adtrd/adtrd/calibrate"
	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/engine/vet"
	"github.com/adtrd/adtrd/evaluate"
	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/systemd"
	"github.com/adtrd/adtrd/tflite"
)

// version is set at build time by cross-build.sh (-X main.version=...).
var version = "dev"

const usage = `usage:
  adtrd run [-c FILE] [--loop]   run the pipeline (no -c: the demo, models/demo's frames once)
  adtrd check -c FILE            validate a config file and exit
  adtrd calibrate -c FILE [--false-reject R] [--escape R] [--use frr|escape|f1] [--png F] [--write [--force]] DIR
                                 propose a threshold from DIR's scores (good images, or an
                                 MVTec-layout folder with defects); --write sets it in FILE
                                 (refused when DIR is too small for the rate, unless --force)
  adtrd eval -c FILE [--json] DIR
                                 image / pixel AUROC, per defect kind, and the confusion at
                                 the threshold, of the config's model on an MVTec-layout folder
  adtrd bench -c FILE [-n N] [--fps F] [--json]
                                 frames/s and per-stage latency of the whole pipeline (simulated
                                 outputs) and of the bare Invoke loop, same engine, same run
  adtrd preprocess --size N [--fit resize|crop] FILE...
                                 write each image's model input (N*N*3 RGB bytes) to stdout,
                                 decoded as the daemon decodes frames (the toolkit's --adtrd)
  adtrd version                  print the version (also --version)
  adtrd help                     this text (also -h, --help); adtrd COMMAND -h: its flags

A config is YAML; every key, its default and its range is in config/example.yaml
(installed as /usr/share/doc/adtrd/example.yaml by the .deb).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Records and errors go to stderr as it was at start: TFLite calls briefly point
	// fd 2 elsewhere to catch what the library prints (tflite.Stderr).
	os.Exit(realMain(ctx, os.Args[1:], os.Stdout, tflite.Stderr()))
}

func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "adtrd %s\n", version)
		return 0
	case "preprocess":
		return preprocessCmd(args[1:], stdout, stderr)
	case "check":
		return checkCmd(args[1:], stdout, stderr)
	case "run":
		return runCmd(ctx, args[1:], stdout, stderr)
	case "eval":
		return evalCmd(args[1:], stdout, stderr)
	case "calibrate":
		return calibrateCmd(args[1:], stdout, stderr)
	case "bench":
		return benchCmd(args[1:], stdout, stderr)
	case vet.Command: // hidden: the daemon's own vetting child (README "Models from outside")
		return vetCmd(args[1:], os.Stdin, stdout, stderr)
	}
	fmt.Fprintf(stderr, "adtrd: unknown command %q\n%s", args[0], usage)
	return 2
}

// parseFlags parses one command's flags: -h prints that command's usage and flags to
// stdout (exit 0), a bad flag or any argument left over is an error (exit 2). ok is
// false when the command must not run; code is then its exit status.
func parseFlags(fs *flag.FlagSet, synopsis string, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "usage: %s\n", synopsis)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return 0, false
	}
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v (usage: %s; -h lists the flags)\n", fs.Name(), err, synopsis)
		return 2, false
	}
	return 0, true
}

func checkCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("adtrd check", flag.ContinueOnError)
	cfgPath := fs.String("c", "", "config file (YAML) to validate")
	if code, ok := parseFlags(fs, "adtrd check -c FILE", args, stdout, stderr); !ok {
		return code
	}
	if *cfgPath == "" {
		fmt.Fprintln(stderr, "adtrd check: -c FILE is required (usage: adtrd check -c FILE)")
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "adtrd check: %v\n", err)
		return 2
	}
	note := ""
	if missing := defaultReplayMissing(cfg, *cfgPath); missing != "" {
		// A config that names only a model is complete for eval and calibrate on
		// files; only `run` and `bench`, which need frames, read the replay folder.
		note = fmt.Sprintf(" (`adtrd run` and `adtrd bench` would replay %s, which does not exist: set capture.replay.path, or capture.source: camera)", missing)
		cfg.Capture.Replay.Path = ""
	}
	log, warnings := newWarnLog(stderr, "adtrd check")
	build, err := builder()
	if err != nil {
		fmt.Fprintf(stderr, "adtrd check: %v\n", err)
		return 1
	}
	checkErr := app.Check(cfg, build, log)
	httpErr := checkHTTP(cfg.HTTP, *cfgPath, log)
	if err := errors.Join(checkErr, httpErr); err != nil {
		fmt.Fprintf(stderr, "adtrd check: %s: %s\n", *cfgPath, strings.ReplaceAll(err.Error(), "\n", "; "))
		// The config is right as far as it could be checked; the camera or the port is
		// not there now.
		if (checkErr == nil || app.OnlyUnreachable(checkErr)) && (httpErr == nil || errors.Is(httpErr, errPortBusy)) {
			return 1
		}
		return 2
	}
	if n := warnings.Load(); n > 0 {
		fmt.Fprintf(stdout, "%s: ok, with %d warning(s) (above)%s\n", *cfgPath, n, note)
		return 0
	}
	fmt.Fprintf(stdout, "%s: ok%s\n", *cfgPath, note)
	return 0
}

// defaultReplayMissing is the replay folder cfg (loaded from path) takes by default
// when that folder is not there, else "". A folder the file names is not excused:
// check fails on it.
func defaultReplayMissing(cfg config.Config, path string) string {
	if cfg.Capture.Source != config.SourceReplay {
		return ""
	}
	def := filepath.Join(filepath.Dir(path), config.Default().Capture.Replay.Path)
	if cfg.Capture.Replay.Path != def {
		return ""
	}
	if _, err := os.Stat(def); !errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	return absPath(def) // said in full: relative to the config's folder, not to the reader's
}

// openModel loads a line tool's config and builds its generation (the engine, scorer
// and threshold run would use). On failure gen is nil and code the exit status: 2 for
// the config, 1 for the model.
func openModel(cmd, path string, stderr io.Writer) (cfg config.Config, gen *daemon.Generation, code int) {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return cfg, nil, 2
	}
	build, err := builder()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return cfg, nil, 1
	}
	if gen, err = build(0, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return cfg, nil, 1
	}
	// eval and calibrate still run under a threshold run would refuse: calibrate is
	// how one is replaced, and eval shows what it does.
	if warning, err := gen.CheckThreshold(); err != nil {
		fmt.Fprintf(stderr, "%s: warning: %v\n", cmd, err)
	} else if warning != "" {
		fmt.Fprintf(stderr, "%s: warning: threshold: %s\n", cmd, warning)
	}
	return cfg, gen, 0
}

// exitFor is a failed command's exit status: 2 for bad input (an image or folder
// that cannot be read as one, a layout that is not MVTec's), 1 for the rest.
func exitFor(err error) int {
	if errors.Is(err, capture.ErrFrame) || errors.Is(err, capture.ErrSource) || errors.Is(err, evaluate.ErrLayout) {
		return 2
	}
	return 1
}

// folder says what is wrong with DIR before its images are looked for.
func folder(dir string) error {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: no such folder", dir)
	case err != nil:
		return err
	case !st.IsDir():
		return fmt.Errorf("%s: not a folder (DIR is a folder of images)", dir)
	}
	return nil
}

// lastArg takes the last argument off as a command's DIR, unless it is a flag or the
// value of one.
func lastArg(fs *flag.FlagSet, args []string) (string, []string) {
	n := len(args)
	if n == 0 || strings.HasPrefix(args[n-1], "-") {
		return "", args
	}
	// `-c FILE` and no DIR: the last word is the flag's value, not DIR.
	if n >= 2 && strings.HasPrefix(args[n-2], "-") {
		if f := fs.Lookup(strings.TrimLeft(args[n-2], "-")); f != nil {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
				return "", args
			}
		}
	}
	return args[n-1], args[:n-1]
}

// calibrationImages are DIR's good images and defects: an MVTec-layout folder
// (test/good and test/<kind>, plus train/good when there; what the page's feedback
// makes has no test/good), or a folder of good images alone (DIR, DIR/good or
// DIR/train/good).
func calibrationImages(dir string) (good, bad []string, err error) {
	if good, bad, ok := mvtecImages(dir); ok {
		return good, bad, nil
	}
	for _, d := range []string{dir, filepath.Join(dir, "good"), filepath.Join(dir, "train", "good")} {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			if paths, err := capture.ListImages(d); err == nil {
				return paths, nil, nil
			}
		}
	}
	return nil, nil, fmt.Errorf("%s: no images (want a folder of good images, or MVTec's test/good + test/<kind>)", dir)
}

// mvtecImages reads an MVTec-layout folder for calibration: test/good and train/good
// are good, test/<kind> defects. No masks are needed (calibrating needs image labels
// only), so the feedback dataset (README "Operators' view") reads as it is. ok is
// false without a test folder holding images.
func mvtecImages(dir string) (good, bad []string, ok bool) {
	kinds, err := os.ReadDir(filepath.Join(dir, "test"))
	if err != nil {
		return nil, nil, false
	}
	for _, k := range kinds {
		if !k.IsDir() {
			continue
		}
		paths, err := capture.ListImages(filepath.Join(dir, "test", k.Name()))
		if err != nil {
			continue
		}
		if k.Name() == "good" {
			good = append(good, paths...)
		} else {
			bad = append(bad, paths...)
		}
	}
	if len(good)+len(bad) == 0 {
		return nil, nil, false
	}
	if more, err := capture.ListImages(filepath.Join(dir, "train", "good")); err == nil {
		good = append(good, more...)
	}
	return good, bad, true
}

func calibrateCmd(args []string, stdout, stderr io.Writer) int {
	const synopsis = "adtrd calibrate -c FILE [--false-reject R] [--escape R] [--use frr|escape|f1] [--png FILE] [--write [--force]] DIR"
	fs := flag.NewFlagSet("adtrd calibrate", flag.ContinueOnError)
	cfgPath := fs.String("c", "", "config file (YAML): its model scores the images; --write sets its threshold")
	frr := fs.Float64("false-reject", 0.001, "target false-reject rate (good parts rejected), 0..1")
	esc := fs.Float64("escape", 0.01, "target escape rate (defects passed), 0..1; needs defects in DIR")
	use := fs.String("use", "frr", "which threshold --write and the snippet take: frr, escape or f1")
	png := fs.String("png", "", "also write a PNG plot of the score distributions to this file (default: none)")
	write := fs.Bool("write", false, "write the threshold into the config file (atomically: a running daemon reloads it; through a symlink, into the file it leads to)")
	force := fs.Bool("force", false, "--write even when the images are too few to bound the target rate")
	var dir string
	dir, args = lastArg(fs, args)
	if code, ok := parseFlags(fs, synopsis, args, stdout, stderr); !ok {
		return code
	}
	usage := func(msg string) int {
		fmt.Fprintf(stderr, "adtrd calibrate: %s (usage: %s)\n", msg, synopsis)
		return 2
	}
	pick := map[string]string{"frr": "false-reject rate", "escape": "escape rate", "f1": "best F1"}[*use]
	switch {
	case *cfgPath == "":
		return usage("-c FILE is required")
	case dir == "":
		return usage("no DIR")
	case !(*frr > 0 && *frr < 1):
		return usage(fmt.Sprintf("--false-reject %v: want a rate between 0 and 1, both excluded", *frr))
	case !(*esc > 0 && *esc < 1):
		return usage(fmt.Sprintf("--escape %v: want a rate between 0 and 1, both excluded", *esc))
	case pick == "":
		return usage(fmt.Sprintf("--use %q: want frr, escape or f1", *use))
	case *force && !*write:
		return usage("--force only applies to --write")
	}
	// What is written is checked before scoring, which can take minutes.
	if *png != "" {
		if err := calibrate.CheckWritable(*png); err != nil {
			fmt.Fprintf(stderr, "adtrd calibrate: --png %v\n", err)
			return 2
		}
	}
	if *write {
		if err := calibrate.CheckWritable(*cfgPath); err != nil {
			fmt.Fprintf(stderr, "adtrd calibrate: --write %v\n", err)
			return 2
		}
	}
	if err := folder(dir); err != nil {
		fmt.Fprintf(stderr, "adtrd calibrate: %v\n", err)
		return 2
	}
	goodPaths, badPaths, err := calibrationImages(dir)
	if err != nil {
		fmt.Fprintf(stderr, "adtrd calibrate: %v\n", err)
		return 2
	}
	if pick != "false-reject rate" && len(badPaths) == 0 {
		return usage(fmt.Sprintf("--use %s needs defects in DIR (MVTec layout)", *use))
	}
	cfg, gen, code := openModel("adtrd calibrate", *cfgPath, stderr)
	if gen == nil {
		return code
	}
	defer gen.Close()
	fit := capture.Fit(cfg.Capture.Replay.Fit)
	fail := func(err error) int {
		fmt.Fprintf(stderr, "adtrd calibrate: %v\n", err)
		return exitFor(err)
	}
	good, err := evaluate.ScoreImages(gen, goodPaths, fit)
	if err != nil {
		return fail(err)
	}
	bad, err := evaluate.ScoreImages(gen, badPaths, fit)
	if err != nil {
		return fail(err)
	}
	points, err := calibrate.Propose(good, bad, *frr, *esc)
	if err != nil {
		return fail(err)
	}
	for _, p := range points {
		// "just above the highest score" is above the model's range when the map
		// saturates: written, that threshold would pass every part.
		if _, err := gen.Meta.CheckThreshold(p.Threshold); p.Name == pick && *write && err != nil {
			fmt.Fprintf(stderr, "adtrd calibrate: not writing %s: threshold: %v\n", *cfgPath, err)
			calibrateReport(stdout, stderr, *cfgPath, *png, false, false, pick, *frr, *esc, good, bad, points)
			return 1
		}
	}
	return calibrateReport(stdout, stderr, *cfgPath, *png, *write, *force, pick, *frr, *esc, good, bad, points)
}

func calibrateReport(stdout, stderr io.Writer, cfgPath, png string, write, force bool, pick string, frr, esc float64, good, bad []float64, points []calibrate.Point) int {
	fmt.Fprintf(stdout, "%d good and %d defective images scored\n\n%s\n", len(good), len(bad), calibrate.Histogram(good, bad, points, 20))
	var chosen calibrate.Point
	for _, p := range points {
		fmt.Fprintf(stdout, "%-17s threshold %.4f: false rejects %d of %d (rate %.4f, 95%% upper bound %.4f)", p.Name, p.Threshold, p.FalseRej, p.Good, p.FRR, p.FRRUpper)
		if p.Defective > 0 {
			fmt.Fprintf(stdout, ", escapes %d of %d (rate %.4f, upper bound %.4f), F1 %.3f", p.Escapes, p.Defective, p.Escape, p.EscapeUp, p.F1)
		}
		fmt.Fprintln(stdout)
		if p.Name == pick {
			chosen = p
		}
	}
	// Why a --write would set a threshold its sample cannot vouch for; "" when none.
	var tooFew string
	if first := points[0]; !first.Sufficient {
		fmt.Fprintf(stdout, "too few good images for a false-reject rate of %g: %d without a false reject bound it at %.4f at best (95%%); %d are needed\n",
			frr, first.Good, calibrate.UpperBound(0, first.Good), calibrate.Needed(frr))
		tooFew = fmt.Sprintf("%d good images cannot bound a false-reject rate of %g (%d are needed)", first.Good, frr, calibrate.Needed(frr))
	}
	// The escape point's sample is said whichever point --use picks; it stops a
	// --write only of the escape point.
	for _, p := range points {
		if p.Name != "escape rate" || p.Sufficient {
			continue
		}
		fmt.Fprintf(stdout, "too few defects for an escape rate of %g: %d without an escape bound it at %.4f at best (95%%); %d are needed\n",
			esc, p.Defective, calibrate.UpperBound(0, p.Defective), calibrate.Needed(esc))
		if chosen.Name == "escape rate" {
			tooFew = fmt.Sprintf("%d defects cannot bound an escape rate of %g (%d are needed)", p.Defective, esc, calibrate.Needed(esc))
		}
	}
	if png != "" {
		if err := calibrate.Plot(png, good, bad, points); err != nil {
			fmt.Fprintf(stderr, "adtrd calibrate: %s: %v\n", png, err)
			return 1
		}
		fmt.Fprintf(stdout, "plot: %s\n", png)
	}
	fmt.Fprintf(stdout, "config snippet (%s):\nthreshold: %.4f\n", chosen.Name, chosen.Threshold)
	if write && tooFew != "" && !force {
		fmt.Fprintf(stderr, "adtrd calibrate: not writing %s: %s; --force writes threshold %.4f anyway\n", cfgPath, tooFew, chosen.Threshold)
		return 1
	}
	if write {
		if err := calibrate.WriteThreshold(cfgPath, chosen.Threshold); err != nil {
			fmt.Fprintf(stderr, "adtrd calibrate: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: threshold set to %.4f\n", cfgPath, chosen.Threshold)
	}
	return 0
}

func evalCmd(args []string, stdout, stderr io.Writer) int {
	const synopsis = "adtrd eval -c FILE [--json] DIR"
	fs := flag.NewFlagSet("adtrd eval", flag.ContinueOnError)
	cfgPath := fs.String("c", "", "config file (YAML): its model, threshold and capture.replay.fit are evaluated")
	asJSON := fs.Bool("json", false, "print the report, every image's score included, as JSON")
	// DIR comes last: taken off before parsing, so a stray word before it is still an
	// "unexpected argument".
	var dir string
	dir, args = lastArg(fs, args)
	if code, ok := parseFlags(fs, synopsis, args, stdout, stderr); !ok {
		return code
	}
	switch {
	case *cfgPath == "":
		fmt.Fprintf(stderr, "adtrd eval: -c FILE is required (usage: %s)\n", synopsis)
		return 2
	case dir == "":
		fmt.Fprintf(stderr, "adtrd eval: no DIR (usage: %s)\n", synopsis)
		return 2
	}
	if err := folder(dir); err != nil {
		fmt.Fprintf(stderr, "adtrd eval: %v\n", err)
		return 2
	}
	items, err := evaluate.Find(dir)
	if err != nil {
		fmt.Fprintf(stderr, "adtrd eval: %v\n", err)
		return 2
	}
	cfg, gen, code := openModel("adtrd eval", *cfgPath, stderr)
	if gen == nil {
		return code
	}
	defer gen.Close()
	rep, err := evaluate.Run(gen, items, capture.Fit(cfg.Capture.Replay.Fit))
	if err != nil {
		fmt.Fprintf(stderr, "adtrd eval: %v\n", err)
		return exitFor(err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", " ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "adtrd eval: %v\n", err)
			return 1
		}
		return 0
	}
	c := rep.Confusion
	fmt.Fprintf(stdout, "model %s (sha256 %.12s), %d good and %d defective images in %s\n", rep.Model, rep.ModelSHA256, rep.Good, rep.Defective, dir)
	fmt.Fprintf(stdout, "image AUROC %.4f, pixel AUROC %.4f\n", rep.ImageAUROC, rep.PixelAUROC)
	kinds := make([]string, 0, len(rep.PerKind))
	for k := range rep.PerKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for i, k := range kinds {
		kinds[i] = fmt.Sprintf("%s %.4f", k, rep.PerKind[k])
	}
	fmt.Fprintf(stdout, "image AUROC per defect kind: %s\n", strings.Join(kinds, ", "))
	fmt.Fprintf(stdout, "at threshold %.4f: %d of %d defects rejected, %d escapes (escape rate %.4f); %d of %d good parts rejected (false-reject rate %.4f)\n",
		c.Threshold, c.TruePositive, c.TruePositive+c.Escapes, c.Escapes, c.EscapeRate(), c.FalseRejects, c.FalseRejects+c.TrueNegative, c.FalseRejectRate())
	return 0
}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("adtrd run", flag.ContinueOnError)
	cfgPath := fs.String("c", "", "config file (YAML); without it, the built-in demo")
	loop := fs.Bool("loop", false, "replay: start again at the end (overrides capture.replay.loop)")
	if code, ok := parseFlags(fs, "adtrd run [-c FILE] [--loop]", args, stdout, stderr); !ok {
		return code
	}
	cfg, err := loadOrDemo(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "adtrd run: %v\n", err)
		return 2
	}
	demo := *cfgPath == ""
	var override func(*config.Config)
	if *loop || demo {
		override = func(c *config.Config) {
			c.Capture.Replay.Loop = c.Capture.Replay.Loop || *loop
			if demo {
				c.Capture.Replay.Labels = config.LabelsName // the demo frames are named NNN_<label>.png
				// /var/lib/adtrd is the service's (StateDirectory); a demo run by
				// anyone records under the temporary folder instead.
				c.Recordings.Dir = filepath.Join(os.TempDir(), "adtrd-demo", "recordings")
				c.Recordings.Dataset = filepath.Join(os.TempDir(), "adtrd-demo", "dataset")
			}
		}
	}
	level := new(slog.LevelVar)
	level.Set(cfg.Log.SlogLevel())
	log := newLogger(cfg.Log.Format, level, stderr)
	sum, err := runPipeline(ctx, *cfgPath, override, level, log)
	if sum != nil {
		// The account of the run, however it ended: a failure's summary says what
		// was decided before it.
		fmt.Fprintf(stdout, "summary: %s\n", sum)
		if l := sum.Escapes.List(); l != "" {
			fmt.Fprintf(stdout, "escapes: %s\n", l)
		}
		if l := sum.FalseRejects.List(); l != "" {
			fmt.Fprintf(stdout, "false rejects: %s\n", l)
		}
		if l := sum.NotEjected.List(); l != "" {
			fmt.Fprintf(stdout, "not ejected (the stop reached its budget before their reject time): %s\n", l)
		}
		if k := sum.KeepUp(); k != "" {
			fmt.Fprintf(stdout, "warning: %s\n", k)
		}
	}
	if err != nil {
		if cfg.Log.Format == config.LogJSON {
			// A log parser reads this stream: the reason the run ended is a record too.
			log.Error("adtrd run: "+err.Error(), "exit", 1)
		} else {
			fmt.Fprintf(stderr, "adtrd run: %v\n", err)
		}
		return 1
	}
	return 0
}

// preprocessCmd lets the toolkit compute scores and thresholds on the daemon's own
// decoding (JPEG decodes differently in Go and in Pillow's libjpeg-turbo).
func preprocessCmd(args []string, stdout, stderr io.Writer) int {
	const use = "usage: adtrd preprocess --size 1..4096 [--fit resize|crop] FILE..."
	fs := flag.NewFlagSet("adtrd preprocess", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // one line below instead of flag's usage block
	size := fs.Int("size", 0, "model input width and height in pixels")
	fitName := fs.String("fit", "resize", "resize (Pillow's bilinear) or crop (centre)")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, use)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return 0
	} else if err != nil {
		fmt.Fprintf(stderr, "adtrd preprocess: %v (%s)\n", err, use)
		return 2
	}
	fit, ok := map[string]capture.Fit{"resize": capture.FitResize, "crop": capture.FitCrop}[*fitName]
	switch {
	case !ok:
		fmt.Fprintf(stderr, "adtrd preprocess: --fit %q: want resize or crop\n", *fitName)
		return 2
	case *size < 1 || *size > 4096:
		fmt.Fprintf(stderr, "adtrd preprocess: --size %d: want 1..4096 (%s)\n", *size, use)
		return 2
	case fs.NArg() == 0:
		fmt.Fprintf(stderr, "adtrd preprocess: no FILE (%s)\n", use)
		return 2
	}
	for _, f := range fs.Args() {
		px, err := capture.LoadRGB(f, capture.Size{W: *size, H: *size}, fit)
		if err != nil {
			fmt.Fprintf(stderr, "adtrd preprocess: %v\n", err)
			return 1
		}
		if _, err := stdout.Write(px); err != nil {
			fmt.Fprintf(stderr, "adtrd preprocess: stdout: %v\n", err)
			return 1
		}
	}
	return 0
}

func loadOrDemo(path string) (config.Config, error) {
	if path != "" {
		return config.Load(path)
	}
	// The built-in demo: config.Default() with paths relative to the working directory.
	return config.Parse("(built-in demo config)", nil)
}

func newLogger(format config.LogFormat, level *slog.LevelVar, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if os.Getenv("JOURNAL_STREAM") != "" {
		// stderr goes to journald, which stamps every line itself.
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	if format == config.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// runPipeline starts each part in order and closes the started ones on any failure.
// Config changes (file events, SIGHUP, `systemctl reload`) are applied by swapping
// generations while it runs. The summary is nil when the pipeline never ran.
//
// A stop (ctx cancelled by SIGTERM or SIGINT) fits one budget, stopBudget from the
// signal, under the unit's TimeoutStopSec: the queued frames of triggered parts are
// decided only while their parts could still be ejected within it (the rest take the
// fail-safe), the wait for a reload in progress and the wait for the parts in flight
// end at its deadline, and what is still in flight then is abandoned, counted and
// named in the summary, with every output inactive. Reaching the budget is no
// failure: the exit is 0.
func runPipeline(ctx context.Context, path string, override func(*config.Config), level *slog.LevelVar, log *slog.Logger) (*daemon.Summary, error) {
	var stopAt atomic.Int64 // when the stop signal came (Unix ns; 0: none yet)
	defer context.AfterFunc(ctx, func() { stopAt.Store(time.Now().UnixNano()) })()
	interval, err := systemd.WatchdogInterval()
	if err != nil {
		return nil, err
	}
	notify := systemd.NewNotifier(log.With("component", "systemd"))
	build, err := builder()
	if err != nil {
		return nil, err
	}
	rl, gen, err := daemon.NewReloader(path, build, override, level, notify, log.With("component", "reload"))
	if err != nil {
		return nil, err
	}
	defer rl.Close()
	if exe, err := os.Executable(); err != nil {
		log.Warn("reloaded models are loaded here without being vetted in a child first", "err", err)
	} else {
		rl.VetWith(&vet.Vetter{Exe: exe, Limits: vet.DefaultLimits, Log: log.With("component", "vet")})
	}
	cfg := gen.Config
	meta := rl.Meta()
	size := capture.Size{W: meta.Input.Width, H: meta.Input.Height}
	src, err := app.OpenSource(app.Sources(), cfg.Capture, size, log)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	line, err := app.OpenLine(cfg, log.With("component", "line"))
	if err != nil {
		return nil, err
	}
	// Every exit path, signals included, ends here: outputs inactive, lines released.
	defer line.Close()
	p, err := daemon.New(daemon.Settings{
		Queue: cfg.Capture.Queue, InFlight: cfg.Tracking.InFlight,
		FrameBefore: time.Duration(cfg.Input.Trigger.FrameBefore), FrameAfter: time.Duration(cfg.Input.Trigger.FrameAfter),
		// A part decided after this still reaches the ejector inside the budget.
		Drain: func(cur config.Config) time.Duration { return stopBudget - max(travel(cfg), travel(cur)) },
	}, gen, src, line.Tracker, log.With("component", "pipeline"))
	if err != nil {
		return nil, err
	}
	rl.Attach(p, line.Tracker)
	line.Start()
	v, err := startView(cfg, path, p, line.Tracker, rl, log)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	reloads := watchReloads(runCtx, path, rl, log)
	log.Info("running", "frames", src.Len(), "threshold", events.Round4(gen.Threshold), "fail_safe", cfg.FailSafe.String(), "generation", gen.N)
	status := statusLine(p, rl)
	// Every goroutine started here is joined before STOPPING=1, so nothing reaches
	// systemd after it.
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		// READY only once a frame has been scored: the model, the camera and the
		// outputs have all worked once.
		select {
		case <-p.FirstFrame():
			notify.ReadyStatus(status())
		case <-runCtx.Done():
		}
	}()
	go func() {
		defer wg.Done()
		// The one progress monitor: the watchdog pings, and the heartbeat and ready
		// outputs, which a hung inference stops as it stops the pings.
		systemd.Supervise(runCtx, notify, systemd.Monitor{
			Watchdog: interval, Check: 2 * time.Second, StatusEvery: 5 * time.Second,
			Progress: p.Progress(), Status: status, Health: line.SetHealthy,
		}, log.With("component", "watchdog"))
	}()
	_, runErr := p.Run(ctx)
	stop()
	wg.Wait()
	stopping := ctx.Err() != nil
	var deadline time.Time // the stop budget's end
	if stopping {
		at := time.Unix(0, stopAt.Load())
		if stopAt.Load() == 0 { // AfterFunc's goroutine has not run yet
			at = time.Now()
		}
		deadline = at.Add(stopBudget)
	}
	// A reload stuck in a read that blocks (a hung network mount) must not hold the
	// stop: it is given a moment and then left behind, since the process is exiting.
	reloadWait := reloadStopWait
	if stopping {
		reloadWait = max(min(reloadWait, time.Until(deadline)), 0)
	}
	select {
	case <-reloads:
	case <-time.After(reloadWait):
		log.Warn("stopping without waiting for a reload still in progress", "waited", reloadWait)
	}
	notify.Stopping()
	// Parts still between camera and ejector get their pulses (or fail-safe) before
	// the outputs go inactive. They may have been stamped under the first generation or
	// the current one (a reload may have changed the delay), so the wait covers the
	// longer travel. On a stop signal it ends at the stop budget's deadline, so that
	// systemd never has to kill the process with outputs on, and sooner when only
	// parts due after it are left. At the natural end of the frames nothing is waiting
	// to kill it: every part gets its full travel.
	var flushCtx context.Context
	var cancel context.CancelFunc
	if stopping {
		flushCtx, cancel = context.WithDeadline(context.Background(), deadline)
		log.Info("stopping: waiting for the parts in flight due inside the stop budget", "up_to", time.Until(deadline).Round(time.Millisecond))
	} else {
		wait := max(travel(cfg), travel(rl.Config()))
		flushCtx, cancel = context.WithTimeout(context.Background(), wait)
		log.Info("stopping: waiting for the parts in flight", "up_to", wait)
	}
	defer cancel()
	flushErr := line.Flush(flushCtx)
	if flushErr != nil && stopping {
		// Not a failure: a stop has a budget, and the summary names what it left.
		log.Warn("stop budget reached: the parts still in flight are not ejected (outputs now inactive)",
			"budget", stopBudget, "in_flight", line.Stats().InFlight, "reason", flushErr.Error())
		flushErr = nil
	} else if flushErr != nil {
		flushErr = fmt.Errorf("parts still in flight are not ejected (outputs now inactive): %w", flushErr)
	}
	// Outputs inactive now; the parts left in flight are reported abandoned, so the
	// account below counts them. Escapes and rejects not pulsed are counted as parts
	// reach the ejector: the account is taken once they all have.
	closeErr := line.Close()
	sum := p.Summary()
	sum.Line = line.Stats()
	if k := sum.KeepUp(); k != "" {
		log.Warn(k)
	}
	return &sum, errors.Join(runErr, flushErr, closeErr)
}

// reloadStopWait is how long a stop waits for a reload in progress.
const reloadStopWait = time.Second

// stopBudget is how long a stop may take from the signal to the outputs inactive
// and the summary: under the shipped unit's TimeoutStopSec=15s
// (systemd/adtrd.service), with 3 s left for closing the camera, the page and the
// engine and for exiting.
const stopBudget = 12 * time.Second

// travel is the longest a part stamped under cfg can still need the outputs.
func travel(cfg config.Config) time.Duration {
	return time.Duration(cfg.Output.Reject.Delay) + time.Duration(cfg.Output.Reject.Pulse) + time.Second
}

// statusLine describes the running daemon for `systemctl status`: generation, model,
// frame rate since the previous call, last score, and the last failed reload if any.
func statusLine(p *daemon.Pipeline, rl *daemon.Reloader) func() string {
	var mu sync.Mutex
	lastN, lastT := uint64(0), time.Now()
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		g := p.Generation()
		n, now := p.Stats.Frames.Load(), time.Now()
		fps := float64(n-lastN) / now.Sub(lastT).Seconds()
		lastN, lastT = n, now
		line := fmt.Sprintf("generation %d, model %.12s, %.1f fps, last score %.3f (threshold %.3f), %d frames, %d rejects",
			g.N, g.ModelSHA, fps, p.LastScore(), g.Threshold, n, p.Stats.Rejects.Load())
		if n := p.Stats.Skipped.Load(); n > 0 {
			line += fmt.Sprintf(", %d frames skipped (the source is faster than inference)", n)
		}
		if at := p.CameraLost(); !at.IsZero() {
			line += fmt.Sprintf("; CAMERA LOST for %v (parts take the fail-safe)", time.Since(at).Round(time.Second))
		}
		if st := rl.Status(); st.Failed > 0 {
			line += fmt.Sprintf("; %d failed reloads, last at %s: %.200s", st.Failed, st.LastErrorAt.Format(time.TimeOnly), st.LastError)
		}
		return line
	}
}

// watchReloads applies reloads from file events and SIGHUP (what `systemctl reload`
// sends) until ctx ends; the returned channel closes when it has.
func watchReloads(ctx context.Context, path string, rl *daemon.Reloader, log *slog.Logger) <-chan struct{} {
	done := make(chan struct{})
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	requests := make(chan string, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case requests <- "SIGHUP":
				default:
				}
			}
		}
	}()
	var w *config.Watcher
	if path != "" {
		var err error
		if w, err = config.NewWatcher(100*time.Millisecond, log); err != nil {
			log.Error("config changes will not be seen; SIGHUP still reloads", "err", err)
		}
	}
	go func() {
		defer close(done)
		defer signal.Stop(hup)
		rl.Serve(ctx, w, requests)
	}()
	return done
}
