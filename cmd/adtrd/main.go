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
	"syscall"

	"github.com/adtrd/adtrd/app"
	"github.com/adtrd/adtrd/calibrate"
	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/engine/vet"
	"github.com/adtrd/adtrd/evaluate"
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
	ctx := context.Background()
	if len(os.Args) > 1 && os.Args[1] == "run" {
		// Only the daemon stops gracefully (outputs inactive, the summary); the other
		// commands keep the default, so Ctrl-C or `timeout` ends them even inside a
		// model's inference.
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
		defer stop()
	}
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
	httpErr := app.CheckHTTP(cfg.HTTP, *cfgPath, log)
	if err := errors.Join(checkErr, httpErr); err != nil {
		fmt.Fprintf(stderr, "adtrd check: %s: %s\n", *cfgPath, strings.ReplaceAll(err.Error(), "\n", "; "))
		// The config is right as far as it could be checked; the camera or the port is
		// not there now.
		if (checkErr == nil || app.OnlyUnreachable(checkErr)) && (httpErr == nil || errors.Is(httpErr, app.ErrPortBusy)) {
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
	return app.AbsPath(def) // said in full: relative to the config's folder, not to the reader's
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
	fit := cfg.Capture.Replay.Fit
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
	rep, err := evaluate.Run(gen, items, cfg.Capture.Replay.Fit)
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
	f, err := engines()
	if err != nil {
		fmt.Fprintf(stderr, "adtrd run: %v\n", err)
		return 1
	}
	exe, err := os.Executable()
	if err != nil {
		log.Warn("cannot find this binary to run the vetting child", "err", err)
	}
	hup, stopHup := sighup()
	defer stopHup()
	sum, err := app.Run(ctx, app.RunOptions{
		Path: *cfgPath, Override: override, Level: level, Engines: f, VetExe: exe,
		Reloads: hup, Version: version, Log: log,
	})
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

// sighup turns SIGHUP (what `systemctl reload` sends) into reload requests; one
// waiting request is enough, the rest are dropped. stop ends it.
func sighup() (requests <-chan string, stop func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP)
	out := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-sig:
				select {
				case out <- "SIGHUP":
				default:
				}
			}
		}
	}()
	return out, func() { signal.Stop(sig); close(done) }
}
