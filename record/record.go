// Package record keeps recordings of rejected and near-threshold frames on disk, off
// the frame path, under a size quota and an age limit, and turns operators' feedback
// on them into labelled images of an MVTec-layout dataset.
//
// A Recorder subscribes to the daemon's event bus. For each decision by score that is
// a reject, or a pass scoring above Near x threshold, it fetches the model input and
// the anomaly map from the bus's ring and writes one recording, a folder
//
//	<Dir>/<id>/frame.png    the model input exactly as the model saw it: Size x Size
//	                        8-bit RGB, lossless (read back it gives the same bytes)
//	<Dir>/<id>/overlay.png  the anomaly map over it (heatmap.Overlay)
//	<Dir>/<id>/meta.json    Meta, with the map's Grid x Grid real values
//
// where id is the decision's UTC time to the millisecond and its frame sequence
// number, 20261202T131500.123Z-000042 (IDPattern), so ids sort by time. A recording
// is written in <Dir>/.tmp-<id>/ and renamed into place: a reader never sees half of
// one. After each recording (and at start, and every minute with an age limit), the
// oldest are removed until their files total at most Quota bytes and none is older
// than MaxAge.
//
// Feedback (Label) copies a recording's frame.png into the dataset:
//
//	<Dataset>/train/good/<id>.png                a false reject: the part was good
//	<Dataset>/test/<kind>/<id>.png               a confirmed defect of that kind
//	<Dataset>/ground_truth/<kind>/<id>_mask.png  its mask (see Label)
//
// which the toolkit reads (adtr.data.Dataset: train_paths, labelled_defects for
// `adtr train --plus --defects DATASET`) and the daemon's calibrate and evaluate read
// (evaluate.Find, capture.ListImages). A label is filed whole or not at all: its
// files are written in <Dataset>/.tmp-<id>/ and renamed into place, and a failure
// removes what it had placed (Label).
//
// Nothing here can stop a frame: a full disk, a read-only or vanished directory or a
// failed write drops that recording, counts it (Stats), logs at most one line per 10
// seconds, removes what it had written, and the next recording tries again.
package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/heatmap"
)

var (
	// ErrUnusable reports a recordings directory (or dataset) that cannot be made or
	// written now. It is not fatal: New still returns a Recorder, which drops and
	// counts recordings until the directory is writable again.
	ErrUnusable = errors.New("record: directory unusable")
	ErrOptions  = errors.New("record: bad options")
	ErrNotFound = errors.New("record: no such recording")
	ErrBadKind  = errors.New("record: bad defect kind")
	ErrBadLabel = errors.New("record: bad label")
	// ErrNoDataset: feedback needs Options.Dataset.
	ErrNoDataset = errors.New("record: no dataset folder")
	ErrClosed    = errors.New("record: recorder closed")
)

// IDPattern is what a recording's id looks like: UTC time, milliseconds, Z, then the
// frame's sequence number (at least 6 digits).
const IDPattern = `^[0-9]{8}T[0-9]{6}\.[0-9]{3}Z-[0-9]{6,20}$`

var (
	idRE   = regexp.MustCompile(IDPattern)
	kindRE = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)
)

const idTime = "20060102T150405.000Z"

// The files of a recording.
const (
	FramePNG   = "frame.png"
	OverlayPNG = "overlay.png"
	MetaJSON   = "meta.json"
)

// Prefixes of what is in the directory but not a recording (yet, or any more).
const (
	tmpPrefix = ".tmp-"
	delPrefix = ".del-"
)

// SubscribeBuffer is how many events the recorder's bus subscription holds.
const SubscribeBuffer = 64

// logEvery is the least time between two log lines about failed recordings.
const logEvery = 10 * time.Second

// maxMeta is the largest meta.json read back (a 64 x 64 map is ~40 KB).
const maxMeta = 1 << 20

// Options configure a Recorder (config.Recordings, with Quota in bytes).
type Options struct {
	Dir     string        // where recordings go (required)
	Quota   int64         // bytes the recordings' files may total; 0: no quota
	MaxAge  time.Duration // older recordings are removed; 0: no age limit
	Near    float64       // passes scoring above Near x threshold are recorded too; 0: rejects only
	Rate    float64       // recordings per second at most (burst max(1, Rate)); 0: no limit
	Dataset string        // where feedback lands (MVTec layout); "": Label refuses
	Bus     *events.Bus   // the events (required by Start)
	Log     *slog.Logger  // nil: discard
	Now     func() time.Time
}

// Label is an operator's verdict on a recording.
type Label int

const (
	Unlabelled  Label = iota
	FalseReject       // the part was good: train/good
	Defect            // a real defect: test/<kind>
)

var labelNames = [...]string{"unlabelled", "false_reject", "defect"}

func (l Label) String() string {
	if l < 0 || int(l) >= len(labelNames) {
		return fmt.Sprintf("label(%d)", int(l))
	}
	return labelNames[l]
}

// ParseLabel reads a label's name (String).
func ParseLabel(s string) (Label, error) {
	for i, n := range labelNames {
		if s == n {
			return Label(i), nil
		}
	}
	return 0, fmt.Errorf("%w: %q (want false_reject or defect)", ErrBadLabel, s)
}

func (l Label) MarshalText() ([]byte, error) {
	if l < 0 || int(l) >= len(labelNames) {
		return nil, fmt.Errorf("%w: %d", ErrBadLabel, int(l))
	}
	return []byte(labelNames[l]), nil
}

func (l *Label) UnmarshalText(b []byte) error {
	v, err := ParseLabel(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// DropReason is why a recording that should have been made was not.
type DropReason int

const (
	DropRate  DropReason = iota // over Options.Rate
	DropRing                    // the bus's ring had moved on, or held no frame (or none the overlay draws)
	DropWrite                   // writing failed: full disk, read-only or vanished directory...
	DropBus                     // the subscription was full (any event, not only recordable ones)
	DropReasons
)

var dropNames = [...]string{"rate", "ring", "write", "bus"}

func (d DropReason) String() string {
	if d < 0 || int(d) >= len(dropNames) {
		return fmt.Sprintf("drop(%d)", int(d))
	}
	return dropNames[d]
}

// Stats are the recorder's counters.
type Stats struct {
	Recorded    uint64              // recordings written
	Dropped     [DropReasons]uint64 // by DropReason
	Bytes       int64               // the recordings' files now on disk
	Count       int                 // recordings now on disk
	Removed     uint64              // by the quota or the age limit
	Labelled    uint64              // feedback taken
	LastError   string              // the last write failure ("": none)
	LastErrorAt time.Time
}

// Meta is a recording's meta.json.
type Meta struct {
	ID         string    `json:"id"`
	Time       time.Time `json:"time"` // the decision's
	Seq        uint64    `json:"seq"`
	Part       uint64    `json:"part"`
	Frame      string    `json:"frame"` // the frame's base name
	Score      float64   `json:"score"`
	Threshold  float64   `json:"threshold"`
	Decision   string    `json:"decision"` // events.Decision's String
	Reason     string    `json:"reason"`
	Generation uint64    `json:"generation"`
	Model      string    `json:"model_sha256"`
	Grid       int       `json:"grid"` // the map is Grid x Grid
	Size       int       `json:"size"` // the frame is Size x Size RGB
	Label      Label     `json:"label,omitzero"`
	Kind       string    `json:"kind,omitempty"` // a defect's
	LabelledAt time.Time `json:"labelled_at,omitzero"`
	// Where the labelled copy and its mask are, relative to the dataset.
	DatasetFile string `json:"dataset_file,omitempty"`
	MaskFile    string `json:"mask_file,omitempty"`
	// Map is the anomaly map, Grid x Grid real values, row-major: in meta.json, not
	// in List's answers.
	Map []float32 `json:"map,omitempty"`
	// Bytes is what the recording's files take (not in meta.json).
	Bytes int64 `json:"-"`
}

// frames is where the recorder fetches a decision's frame and map: *events.Bus.
type frames interface {
	Frame(ref events.MapRef, dst []byte) bool
	Map(ref events.MapRef, dst []float32) bool
}

// key orders recordings: by the id's millisecond, then sequence number.
type key struct {
	ms  int64
	seq uint64
}

func (a key) cmp(b key) int {
	if c := cmpInt(a.ms, b.ms); c != 0 {
		return c
	}
	return cmpInt(a.seq, b.seq)
}

func cmpInt[T int64 | uint64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type entry struct {
	key  key
	meta Meta // without Map
}

// Recorder writes recordings; see the package comment. Its methods are safe for
// concurrent use.
type Recorder struct {
	opt    Options
	now    func() time.Time
	log    *slog.Logger
	src    frames
	create func(name string) (*os.File, error) // a new file for writing (tests inject failures)

	mu       sync.Mutex // the index, counters, Label
	index    []entry    // ascending by key
	bytes    int64
	recorded uint64
	dropped  [DropReasons]uint64
	removed  uint64
	labelled uint64
	lastErr  string
	lastAt   time.Time
	started  bool
	closed   bool
	sub      *events.Subscription
	done     chan struct{}
	finished chan struct{}
	flushc   chan chan struct{}

	// owned by the recording goroutine (or a test calling handle)
	stale      bool // a write failed: rescan the directory before the next
	tokens     float64
	refilled   time.Time
	logAt      time.Time
	suppressed int
	failedRun  int // recordings dropped by write failures since the last success
	frame      []byte
	grid       []float32
	frameImg   *image.RGBA
	overlayImg *image.RGBA
	size       int
	count      countingWriter
	metaBuf    bytes.Buffer
	metaEnc    *json.Encoder
	idBuf      [64]byte
}

// New makes a recorder, making Dir and Dataset (and Dataset/train/good, mode 0o750)
// when missing, and indexes the recordings already in Dir (removing what the quota
// and the age limit do not allow, and leftovers of interrupted writes). When Dir
// cannot be made or written it returns the recorder with an error wrapping
// ErrUnusable, which the caller logs and goes on with: recordings are dropped and
// counted until the directory becomes writable. Bad options are ErrOptions, with no
// recorder.
func New(opt Options) (*Recorder, error) {
	switch {
	case opt.Dir == "":
		return nil, fmt.Errorf("%w: no directory", ErrOptions)
	case opt.Quota < 0:
		return nil, fmt.Errorf("%w: quota %d bytes", ErrOptions, opt.Quota)
	case opt.MaxAge < 0:
		return nil, fmt.Errorf("%w: max age %v", ErrOptions, opt.MaxAge)
	case !(opt.Near >= 0) || math.IsInf(opt.Near, 0):
		return nil, fmt.Errorf("%w: near %v", ErrOptions, opt.Near)
	case !(opt.Rate >= 0) || math.IsInf(opt.Rate, 0):
		return nil, fmt.Errorf("%w: rate %v", ErrOptions, opt.Rate)
	}
	r := &Recorder{
		opt: opt, now: opt.Now, log: opt.Log, create: createFile,
		done: make(chan struct{}), finished: make(chan struct{}), flushc: make(chan chan struct{}),
		tokens: max(1, opt.Rate),
	}
	if opt.Bus != nil {
		r.src = opt.Bus
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.refilled = r.now()
	r.metaEnc = json.NewEncoder(&r.metaBuf)
	r.metaEnc.SetIndent("", "  ")
	var errs []error
	if err := r.rescan(); err != nil {
		r.stale = true
		errs = append(errs, err)
	}
	if opt.Dataset != "" {
		if err := os.MkdirAll(filepath.Join(opt.Dataset, "train", "good"), 0o750); err != nil {
			errs = append(errs, fmt.Errorf("%w: dataset: %v", ErrUnusable, err))
		}
		// A label interrupted by a crash left its staging folder (see file).
		left, _ := filepath.Glob(filepath.Join(opt.Dataset, tmpPrefix+"*"))
		for _, p := range left {
			os.RemoveAll(p)
		}
	}
	return r, errors.Join(errs...)
}

func createFile(name string) (*os.File, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
}

// rescan makes Dir if missing, checks that it takes a file, clears leftovers and
// rebuilds the index from the recordings in it, then applies the quota and age limit.
// The recording goroutine (or New) calls it.
func (r *Recorder) rescan() error {
	dir := r.opt.Dir
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("%w: %v", ErrUnusable, err)
	}
	probe := filepath.Join(dir, tmpPrefix+"probe")
	f, err := r.create(probe)
	if err == nil {
		_, err = f.Write([]byte("adtrd\n"))
		err = errors.Join(err, f.Close())
	}
	os.Remove(probe)
	if err != nil {
		return fmt.Errorf("%w: %s: cannot write: %v", ErrUnusable, dir, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnusable, err)
	}
	var index []entry
	var total int64
	for _, e := range ents {
		name := e.Name()
		p := filepath.Join(dir, name)
		if strings.HasPrefix(name, tmpPrefix) || strings.HasPrefix(name, delPrefix) {
			os.RemoveAll(p) // an interrupted write or removal
			continue
		}
		k, ok := parseID(name)
		if !ok || !e.IsDir() {
			continue // not ours: left alone
		}
		m, err := readRecording(p, name)
		if err != nil {
			r.log.Warn("recordings: removing a broken recording", "dir", p, "err", err)
			os.RemoveAll(p)
			continue
		}
		m.Map = nil
		index = append(index, entry{k, m})
		total += m.Bytes
	}
	slices.SortFunc(index, func(a, b entry) int { return a.key.cmp(b.key) })
	r.mu.Lock()
	defer r.mu.Unlock()
	r.index, r.bytes = index, total
	r.enforce()
	return nil
}

// readRecording reads the meta.json of the recording in dir (named id) and what its
// files take; one missing is an error.
func readRecording(dir, id string) (Meta, error) {
	m, err := readMeta(filepath.Join(dir, MetaJSON))
	if err != nil {
		return Meta{}, err
	}
	m.ID = id
	for _, n := range [...]string{FramePNG, OverlayPNG, MetaJSON} {
		fi, err := os.Lstat(filepath.Join(dir, n))
		if err != nil {
			return Meta{}, err
		}
		if !fi.Mode().IsRegular() {
			return Meta{}, fmt.Errorf("%s: not a regular file", n)
		}
		m.Bytes += fi.Size()
	}
	return m, nil
}

func readMeta(path string) (Meta, error) {
	f, err := os.Open(path)
	if err != nil {
		return Meta{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMeta+1))
	if err != nil {
		return Meta{}, err
	}
	if len(b) > maxMeta {
		return Meta{}, fmt.Errorf("%s: larger than %d bytes", path, maxMeta)
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return Meta{}, fmt.Errorf("%s: %v", path, err)
	}
	return m, nil
}

// parseID checks id against IDPattern and returns its order.
func parseID(id string) (key, bool) {
	if !idRE.MatchString(id) {
		return key{}, false
	}
	t, err := time.Parse(idTime, id[:len(idTime)])
	if err != nil {
		return key{}, false
	}
	seq, err := strconv.ParseUint(id[len(idTime)+1:], 10, 64)
	if err != nil {
		return key{}, false
	}
	return key{t.UnixMilli(), seq}, true
}

// Start subscribes to the bus and records on a goroutine of its own.
func (r *Recorder) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return ErrClosed
	case r.started:
		return errors.New("record: already started")
	case r.opt.Bus == nil:
		return fmt.Errorf("%w: no bus", ErrOptions)
	}
	r.started = true
	r.sub = r.opt.Bus.Subscribe(SubscribeBuffer)
	go r.run(r.sub)
	return nil
}

// Close stops recording (what is in the subscription is not recorded); safe twice,
// before Start, and on a nil recorder.
func (r *Recorder) Close() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	started := r.started
	r.mu.Unlock()
	if started {
		close(r.done)
		<-r.finished
		return r.sub.Close()
	}
	return nil
}

func (r *Recorder) run(sub *events.Subscription) {
	defer close(r.finished)
	var tick <-chan time.Time
	if r.opt.MaxAge > 0 {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-r.done:
			return
		case e := <-sub.C():
			r.handle(e)
		case reply := <-r.flushc:
			for len(sub.C()) > 0 {
				r.handle(<-sub.C())
			}
			close(reply)
		case <-tick:
			r.mu.Lock()
			r.enforce()
			r.mu.Unlock()
		}
	}
}

// recordable says whether e is a decision to record.
func (r *Recorder) recordable(e events.Event) bool {
	rec := e.Record
	if e.Kind != events.EventDecision || rec.Reason != events.ByScore {
		return false
	}
	return rec.Decision == events.Reject || (r.opt.Near > 0 && rec.Score > r.opt.Near*rec.Threshold)
}

// allow takes a token from the bucket (Rate a second, burst max(1, Rate)).
func (r *Recorder) allow() bool {
	if r.opt.Rate == 0 {
		return true
	}
	now := r.now()
	if d := now.Sub(r.refilled); d > 0 {
		r.tokens = min(max(1, r.opt.Rate), r.tokens+d.Seconds()*r.opt.Rate)
	}
	r.refilled = now
	if r.tokens < 1 {
		return false
	}
	r.tokens--
	return true
}

// handle records e if it is to be recorded and can be.
func (r *Recorder) handle(e events.Event) {
	if !r.recordable(e) {
		return
	}
	if !r.allow() {
		r.drop(DropRate)
		return
	}
	ref := e.Map
	if ref.Grid < 1 || ref.Size < 1 || ref.Size > heatmap.MaxSize || ref.Grid > ref.Size {
		r.drop(DropRing)
		return
	}
	r.buffers(ref.Size, ref.Grid)
	if !r.src.Frame(ref, r.frame) || !r.src.Map(ref, r.grid) {
		r.drop(DropRing)
		return
	}
	if r.stale {
		if err := r.rescan(); err != nil {
			r.fail(err)
			return
		}
		r.stale = false
	}
	m, err := r.write(e)
	if err != nil {
		r.stale = true
		r.fail(err)
		return
	}
	if r.failedRun > 0 {
		r.log.Info("recordings: writing again", "dir", r.opt.Dir, "dropped", r.failedRun)
		r.failedRun, r.logAt, r.suppressed = 0, time.Time{}, 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recorded++
	r.insert(m)
	r.enforce()
}

// buffers sizes the reused buffers for a size x size frame and a grid x grid map.
func (r *Recorder) buffers(size, grid int) {
	if r.size != size {
		r.size = size
		r.frame = make([]byte, size*size*3)
		r.frameImg = image.NewRGBA(image.Rect(0, 0, size, size))
		r.overlayImg = image.NewRGBA(image.Rect(0, 0, size, size))
	}
	if len(r.grid) != grid*grid {
		r.grid = make([]float32, grid*grid)
	}
}

func (r *Recorder) drop(d DropReason) {
	r.mu.Lock()
	r.dropped[d]++
	r.mu.Unlock()
}

// fail counts a recording lost to a write failure and logs it, at most one line per
// logEvery with how many were not logged since.
func (r *Recorder) fail(err error) {
	now := r.now()
	r.mu.Lock()
	r.dropped[DropWrite]++
	r.lastErr, r.lastAt = err.Error(), now
	r.mu.Unlock()
	r.failedRun++
	if !r.logAt.IsZero() && now.Sub(r.logAt) < logEvery {
		r.suppressed++
		return
	}
	r.log.Warn("recording dropped: cannot write (frames are not affected)", "dir", r.opt.Dir, "err", err, "not_logged", r.suppressed)
	r.logAt, r.suppressed = now, 0
}

// id is the recording id of a decision at t with sequence number seq.
func (r *Recorder) id(t time.Time, seq uint64) string {
	b := t.UTC().AppendFormat(r.idBuf[:0], idTime)
	b = append(b, '-')
	n := len(b)
	b = strconv.AppendUint(b, seq, 10)
	if pad := 6 - (len(b) - n); pad > 0 {
		b = append(b[:n], "000000"[:pad]...)
		b = strconv.AppendUint(b, seq, 10)
	}
	return string(b)
}

// write writes e's recording from the fetched frame and map, atomically.
func (r *Recorder) write(e events.Event) (Meta, error) {
	rec := e.Record
	t := e.Time
	if t.IsZero() {
		t = r.now()
	}
	t = t.UTC()
	id := r.id(t, rec.Seq)
	tmp := filepath.Join(r.opt.Dir, tmpPrefix+id)
	err := os.Mkdir(tmp, 0o750)
	if errors.Is(err, fs.ErrNotExist) { // the directory vanished: make it again
		if err = r.rescan(); err == nil {
			err = os.Mkdir(tmp, 0o750)
		}
	}
	if err != nil {
		return Meta{}, err
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	m := Meta{
		ID: id, Time: t, Seq: rec.Seq, Part: rec.Part, Frame: filepath.Base(rec.Name), Score: rec.Score,
		Threshold: rec.Threshold, Decision: rec.Decision.String(), Reason: rec.Reason.String(), Generation: rec.Gen,
		Model: rec.Model, Grid: e.Map.Grid, Size: e.Map.Size, Map: r.grid,
	}
	if rec.Name == "" {
		m.Frame = ""
	}
	size := e.Map.Size
	if err := heatmap.Frame(r.frameImg, r.frame, size); err != nil {
		return Meta{}, err
	}
	if err := r.writePNG(filepath.Join(tmp, FramePNG), r.frameImg, &m.Bytes); err != nil {
		return Meta{}, err
	}
	if err := heatmap.Overlay(r.overlayImg, r.frame, size, r.grid, e.Map.Grid, rec.Threshold); err != nil {
		return Meta{}, err
	}
	if err := r.writePNG(filepath.Join(tmp, OverlayPNG), r.overlayImg, &m.Bytes); err != nil {
		return Meta{}, err
	}
	r.metaBuf.Reset()
	if err := r.metaEnc.Encode(&m); err != nil {
		return Meta{}, err
	}
	if err := r.writeFile(filepath.Join(tmp, MetaJSON), r.metaBuf.Bytes(), &m.Bytes); err != nil {
		return Meta{}, err
	}
	if err := os.Rename(tmp, filepath.Join(r.opt.Dir, id)); err != nil {
		return Meta{}, err
	}
	done = true
	m.Map = nil
	return m, nil
}

// countingWriter counts what goes through it to w.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (r *Recorder) writePNG(path string, img image.Image, total *int64) error {
	return r.writeWith(path, total, func(w io.Writer) error { return heatmap.EncodePNG(w, img) })
}

func (r *Recorder) writeFile(path string, b []byte, total *int64) error {
	return r.writeWith(path, total, func(w io.Writer) error { _, err := w.Write(b); return err })
}

// writeWith creates path, writes it with fill, syncs and closes it, adding its size
// to total.
func (r *Recorder) writeWith(path string, total *int64, fill func(io.Writer) error) error {
	f, err := r.create(path)
	if err != nil {
		return err
	}
	r.count = countingWriter{w: f}
	err = fill(&r.count)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	*total += r.count.n
	return nil
}

// insert adds m to the index in order (at the end unless the clock went back). r.mu held.
func (r *Recorder) insert(m Meta) {
	k, _ := parseID(m.ID)
	e := entry{k, m}
	if n := len(r.index); n == 0 || r.index[n-1].key.cmp(k) < 0 {
		r.index = append(r.index, e)
	} else {
		i, _ := slices.BinarySearchFunc(r.index, k, func(e entry, k key) int { return e.key.cmp(k) })
		r.index = slices.Insert(r.index, i, e)
	}
	r.bytes += m.Bytes
}

// enforce removes the oldest recordings until the quota and the age limit hold. r.mu held.
func (r *Recorder) enforce() {
	now := r.now()
	for len(r.index) > 0 {
		old := r.index[0]
		tooOld := r.opt.MaxAge > 0 && now.Sub(old.meta.Time) > r.opt.MaxAge
		over := r.opt.Quota > 0 && r.bytes > r.opt.Quota
		if !tooOld && !over {
			return
		}
		p := filepath.Join(r.opt.Dir, old.meta.ID)
		gone := filepath.Join(r.opt.Dir, delPrefix+old.meta.ID)
		if err := os.Rename(p, gone); err != nil && !errors.Is(err, fs.ErrNotExist) {
			r.log.Warn("recordings: cannot remove the oldest", "dir", p, "err", err)
			return // tried again after the next recording
		}
		os.RemoveAll(gone)
		r.index[0] = entry{}
		r.index = r.index[1:]
		r.bytes -= old.meta.Bytes
		r.removed++
	}
}

// Stats returns the counters.
func (r *Recorder) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Stats{
		Recorded: r.recorded, Dropped: r.dropped, Bytes: r.bytes, Count: len(r.index), Removed: r.removed,
		Labelled: r.labelled, LastError: r.lastErr, LastErrorAt: r.lastAt,
	}
	if r.sub != nil {
		s.Dropped[DropBus] = r.sub.Dropped()
	}
	return s
}

// List returns up to n recordings (n <= 0: all), newest first, without their maps.
func (r *Recorder) List(n int) []Meta {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n <= 0 || n > len(r.index) {
		n = len(r.index)
	}
	out := make([]Meta, n)
	for i := range out {
		out[i] = r.index[len(r.index)-1-i].meta
	}
	return out
}

// find is id's place in the index. r.mu held.
func (r *Recorder) find(id string) (int, error) {
	k, ok := parseID(id)
	if !ok {
		return 0, fmt.Errorf("%w: bad id %q", ErrNotFound, id)
	}
	i, ok := slices.BinarySearchFunc(r.index, k, func(e entry, k key) int { return e.key.cmp(k) })
	if !ok || r.index[i].meta.ID != id {
		return 0, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return i, nil
}

// File is the path of one file (FramePNG, OverlayPNG or MetaJSON) of recording id;
// ErrNotFound for any other name, an id not of IDPattern, or one not (any more) on disk.
func (r *Recorder) File(id, name string) (string, error) {
	switch name {
	case FramePNG, OverlayPNG, MetaJSON:
	default:
		return "", fmt.Errorf("%w: no file %q in a recording", ErrNotFound, name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.find(id); err != nil {
		return "", err
	}
	p := filepath.Join(r.opt.Dir, id, name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrNotFound, id, err)
	}
	return p, nil
}

// Label files recording id's frame in the dataset as l: FalseReject copies frame.png
// to <Dataset>/train/good/<id>.png; Defect copies it to <Dataset>/test/<kind>/<id>.png
// (kind "" is "defect"; otherwise 1 to 32 of a-z, 0-9, _ and -, and not "good":
// ErrBadKind) with a mask at <Dataset>/ground_truth/<kind>/<id>_mask.png, which the
// MVTec layout requires of every defect. The operator labels the image, not pixels,
// so the mask is the model's own: the pixels where the upsampled map is at least the
// threshold, or at least its maximum when that is lower (a pass near the threshold),
// so it is never empty; train image-level (`adtr train --plus --labels image`) unless
// the masks are replaced by drawn ones. The label goes into meta.json. All of it or
// nothing lands: on a full disk or any other failure the dataset and meta.json are as
// they were, and the error says so (see file). Labelling again moves the copy: the
// last label counts. It returns the copy's path. Unknown id, or a recording whose
// files vanished: ErrNotFound.
func (r *Recorder) Label(id string, l Label, kind string) (string, error) {
	if r.opt.Dataset == "" {
		return "", ErrNoDataset
	}
	var rel, mask string
	switch l {
	case FalseReject:
		kind = ""
		rel = filepath.Join("train", "good", id+".png")
	case Defect:
		if kind == "" {
			kind = "defect"
		}
		if !kindRE.MatchString(kind) || kind == "good" {
			return "", fmt.Errorf("%w: %q (want 1 to 32 of a-z, 0-9, _ and -, not good)", ErrBadKind, kind)
		}
		rel = filepath.Join("test", kind, id+".png")
		mask = filepath.Join("ground_truth", kind, id+"_mask.png")
	default:
		return "", fmt.Errorf("%w: %v", ErrBadLabel, l)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i, err := r.find(id)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(r.opt.Dir, id)
	m, err := readMeta(filepath.Join(dir, MetaJSON))
	if err != nil {
		return "", fmt.Errorf("record: %s: %w", id, gone(err))
	}
	frame, err := os.ReadFile(filepath.Join(dir, FramePNG))
	if err != nil {
		return "", fmt.Errorf("record: %s: %w", id, gone(err))
	}
	ds := r.opt.Dataset
	files := []staged{{rel, frame}}
	if mask != "" {
		b, err := maskPNG(m)
		if err != nil {
			return "", fmt.Errorf("record: %s: %w", id, err)
		}
		files = []staged{{mask, b}, {rel, frame}} // the mask first: no reader sees a defect without one
	}
	oldFile, oldMask := m.DatasetFile, m.MaskFile
	m.ID, m.Label, m.Kind, m.LabelledAt, m.DatasetFile, m.MaskFile = id, l, kind, r.now().UTC(), rel, mask
	b, err := json.MarshalIndent(&m, "", "  ")
	if err != nil {
		return "", err
	}
	b = append(b, '\n')
	mpath := filepath.Join(dir, MetaJSON)
	before, _ := os.Stat(mpath)
	if err := r.file(id, files, mpath, b); err != nil {
		return "", err
	}
	// The earlier label's copy goes once the new one and meta.json are in place.
	// A kind's folder left empty goes too (an empty test/<kind> is an error to
	// evaluate.Find); train/good stays (the toolkit's Dataset wants it).
	for _, old := range [...][2]string{{oldFile, rel}, {oldMask, mask}} {
		if old[0] != "" && old[0] != old[1] && filepath.IsLocal(old[0]) {
			os.Remove(filepath.Join(ds, old[0]))
			if d := filepath.Dir(old[0]); d != filepath.Join("train", "good") {
				os.Remove(filepath.Join(ds, d)) // fails, harmlessly, unless empty
			}
		}
	}
	e := &r.index[i]
	if before != nil {
		delta := int64(len(b)) - before.Size()
		e.meta.Bytes += delta
		r.bytes += delta
	}
	e.meta.Label, e.meta.Kind, e.meta.LabelledAt, e.meta.DatasetFile, e.meta.MaskFile = m.Label, m.Kind, m.LabelledAt, rel, mask
	r.labelled++
	return filepath.Join(ds, rel), nil
}

// maskPNG is m's mask (see Label) as an 8-bit grey PNG: 255 in, 0 out.
func maskPNG(m Meta) ([]byte, error) {
	if m.Grid < 1 || m.Size < 1 || len(m.Map) != m.Grid*m.Grid {
		return nil, fmt.Errorf("meta.json has no %dx%d map for the mask", m.Grid, m.Grid)
	}
	up := make([]float32, m.Size*m.Size)
	if err := heatmap.Upsample(up, m.Map, m.Grid, m.Size); err != nil {
		return nil, err
	}
	top := float32(math.Inf(-1))
	for _, v := range up {
		top = max(top, v)
	}
	level := min(m.Threshold, float64(top))
	img := image.NewGray(image.Rect(0, 0, m.Size, m.Size))
	for i, v := range up {
		if float64(v) >= level {
			img.Pix[i] = 255
		}
	}
	var b bytes.Buffer
	if err := heatmap.EncodePNG(&b, img); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// staged is one file of a label: its path in the dataset and its bytes.
type staged struct {
	rel string
	b   []byte
}

// gone makes a recording's file that vanished (removed by hand, or by the quota
// between the list and the click) ErrNotFound; other errors stay as they are.
func gone(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	return err
}

// file puts a label's files into the dataset and meta.json's new text in place, all
// or nothing. Everything that takes space is written and synced first, the copies in
// <Dataset>/.tmp-<id>/ and meta.json beside itself; then the missing folders are made
// and the files renamed into place. A failure at any step (a full disk, most likely
// while writing) removes what this call wrote, renamed or made, so the dataset holds
// the whole example or nothing of it, and meta.json keeps its old label. r.mu held.
func (r *Recorder) file(id string, files []staged, mpath string, meta []byte) (err error) {
	ds := r.opt.Dataset
	stage := filepath.Join(ds, tmpPrefix+id)
	mtmp := filepath.Join(filepath.Dir(mpath), "."+MetaJSON+".tmp")
	var placed, made []string
	defer func() {
		os.RemoveAll(stage)
		os.Remove(mtmp)
		if err == nil {
			return
		}
		for _, p := range slices.Backward(placed) {
			os.Remove(p)
		}
		for _, d := range slices.Backward(made) {
			os.Remove(d)
		}
	}()
	if err := os.MkdirAll(ds, 0o750); err != nil {
		return fmt.Errorf("record: dataset: %w", err)
	}
	os.RemoveAll(stage) // what a crash left
	if err := os.Mkdir(stage, 0o750); err != nil {
		return fmt.Errorf("record: dataset: %w", err)
	}
	for _, f := range files {
		if err := r.writeSynced(filepath.Join(stage, filepath.Base(f.rel)), f.b); err != nil {
			return fmt.Errorf("record: dataset: %w", err)
		}
	}
	os.Remove(mtmp)
	if err := r.writeSynced(mtmp, meta); err != nil {
		return fmt.Errorf("record: %s: %w", id, err)
	}
	dirs := map[string]bool{}
	for _, f := range files {
		d, err := mkdirs(ds, filepath.Dir(f.rel))
		made = append(made, d...)
		if err != nil {
			return fmt.Errorf("record: dataset: %w", err)
		}
		dirs[filepath.Join(ds, filepath.Dir(f.rel))] = true
	}
	for _, f := range files {
		dst := filepath.Join(ds, f.rel)
		_, statErr := os.Lstat(dst)
		if err := os.Rename(filepath.Join(stage, filepath.Base(f.rel)), dst); err != nil {
			return fmt.Errorf("record: dataset: %w", err)
		}
		if errors.Is(statErr, fs.ErrNotExist) {
			// One already there is this label's own copy (the same frame, the same
			// mask): a failure later leaves it, as meta.json still names it.
			placed = append(placed, dst)
		}
	}
	if err := os.Rename(mtmp, mpath); err != nil {
		return fmt.Errorf("record: %s: %w", id, err)
	}
	for d := range dirs {
		syncDir(d)
	}
	syncDir(filepath.Dir(mpath))
	return nil
}

// mkdirs makes rel's folders under root (0o750) and returns those it made, the
// outermost first; on failure, those it made so far.
func mkdirs(root, rel string) ([]string, error) {
	var made []string
	p := root
	for _, part := range strings.Split(filepath.Clean(rel), string(filepath.Separator)) {
		p = filepath.Join(p, part)
		err := os.Mkdir(p, 0o750)
		switch {
		case err == nil:
			made = append(made, p)
		case errors.Is(err, fs.ErrExist):
			if fi, serr := os.Stat(p); serr != nil || !fi.IsDir() {
				return made, fmt.Errorf("%s: not a folder", p)
			}
		default:
			return made, err
		}
	}
	return made, nil
}

// writeSynced creates path (it must not exist), writes b and syncs it; on failure
// nothing is left.
func (r *Recorder) writeSynced(path string, b []byte) error {
	f, err := r.create(path)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return nil
}

// syncDir makes a folder's new entries durable; best effort (the renames are done).
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}
