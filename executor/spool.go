package executor

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/jobd/jobd/api"
)

// The report spool keeps on disk, in order, the reports no jobd could take,
// so that jobs go on running and nothing is lost while every jobd is down,
// even across a restart of the agent. Its files are in StateDir/spool:
//
//	lock          locked (flock) by the agent using the spool
//	reports-N.jsonl
//	              segments, N counting up from 1 (20 digits): one
//	              api.RunReport as JSON per line, each append fsynced
//	cursor        {"segment":N,"offset":M}: where the reports not yet
//	              acknowledged by jobd start
//
// Appends go to the newest segment until it passes segBytes, then to a new
// one. A segment is deleted once jobd acknowledged all of it, and when the
// spool is empty again every file but the lock is removed. The cursor is
// rewritten (not fsynced) after each acknowledged batch: after a crash it
// may lag, and the reports since are sent again, which jobd acknowledges as
// duplicates.
const (
	spoolDirName    = "spool"
	spoolLockName   = "lock"
	spoolCursorName = "cursor"
	segmentPrefix   = "reports-"
	segmentSuffix   = ".jsonl"
	maxSegmentBytes = 64 << 20
	minSegmentBytes = 4 << 10
)

// errSpoolClosed is returned by appends to a closed spool.
var errSpoolClosed = errors.New("report spool closed")

// spool is the report spool. One goroutine appends batches (the report
// queue's, through spoolReporter.Send) and one reads and acknowledges them
// (the resender); it is safe for concurrent use.
type spool struct {
	dir      string
	log      *slog.Logger
	maxBytes int64
	segBytes int64

	lock *os.File // holds the flock while open

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every append, ack and notify
	segs    []*segment    // oldest first; appends go to the last one
	w       *os.File      // append handle of the last segment; nil: start a new one
	nextSeq uint64        // number of the next segment
	off     int64         // bytes of segs[0] already acknowledged
	size    int64         // bytes of all segments
	pending int           // reports appended and not acknowledged
	runs    map[string]int
	full    bool // the spool is full and it was logged
	closed  bool
}

// segment is one spool file.
type segment struct {
	seq  uint64
	path string
	size int64 // bytes written and synced, ending with a whole line
}

// spoolPos is a position in the spool, as saved in the cursor file.
type spoolPos struct {
	Segment uint64 `json:"segment"`
	Offset  int64  `json:"offset"`
}

// newSpool returns the spool of stateDir, holding at most maxBytes. It
// touches no file until open.
func newSpool(stateDir string, maxBytes int64, log *slog.Logger) *spool {
	return &spool{
		dir:      filepath.Join(stateDir, spoolDirName),
		log:      log,
		maxBytes: maxBytes,
		segBytes: min(maxSegmentBytes, max(maxBytes/16, minSegmentBytes)),
		changed:  make(chan struct{}),
		nextSeq:  1,
		runs:     map[string]int{},
	}
}

// open locks the spool directory, creating it when missing, and loads what
// an earlier agent left in it.
func (s *spool) open() error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("create spool dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(s.dir, spoolLockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("open spool lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("%s is in use by another executor: give each executor a state dir of its own", s.dir)
		}
		return fmt.Errorf("lock %s: %w", s.dir, err)
	}
	s.lock = lock
	if err := s.load(); err != nil {
		s.close()
		return err
	}
	return nil
}

// close stops appends and releases the lock; the files stay for the next
// agent.
func (s *spool) close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		if s.w != nil {
			s.w.Close()
			s.w = nil
		}
		s.notifyLocked()
	}
	s.mu.Unlock()
	if s.lock != nil {
		_ = syscall.Flock(int(s.lock.Fd()), syscall.LOCK_UN)
		s.lock.Close()
		s.lock = nil
	}
}

// load reads the segments and the cursor left by an earlier agent, counts
// the reports still to send and truncates a torn last line (the agent
// stopped in the middle of an append, which was therefore never
// acknowledged to the run).
func (s *spool) load() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("read spool dir: %w", err)
	}
	var segs []*segment
	for _, e := range entries {
		name := e.Name()
		num, ok := strings.CutPrefix(name, segmentPrefix)
		if !ok {
			continue
		}
		if num, ok = strings.CutSuffix(num, segmentSuffix); !ok {
			continue
		}
		seq, err := strconv.ParseUint(num, 10, 64)
		if err != nil || seq == 0 {
			s.log.Warn("ignoring a file of the report spool", "file", filepath.Join(s.dir, name))
			continue
		}
		segs = append(segs, &segment{seq: seq, path: filepath.Join(s.dir, name)})
	}
	slices.SortFunc(segs, func(a, b *segment) int { return cmp.Compare(a.seq, b.seq) })
	cur := s.readCursor()

	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextSeq = max(s.nextSeq, cur.Segment+1)
	if len(segs) > 0 {
		s.nextSeq = max(s.nextSeq, segs[len(segs)-1].seq+1)
	}
	for len(segs) > 0 && segs[0].seq < cur.Segment {
		removeFile(s.log, segs[0].path) // acknowledged before the agent stopped
		segs = segs[1:]
	}
	if len(segs) > 0 && segs[0].seq == cur.Segment {
		s.off = cur.Offset
	}
	for i, seg := range segs {
		from := int64(0)
		if i == 0 {
			from = s.off
		}
		if err := s.scanLocked(seg, from, i == len(segs)-1); err != nil {
			return err
		}
		s.size += seg.size
	}
	s.segs = segs
	if len(segs) > 0 {
		s.off = min(s.off, segs[0].size)
	}
	if s.advanceLocked() {
		s.resetLocked()
		return nil
	}
	s.log.Info("report spool holds reports from before; sending them first once jobd answers",
		"dir", s.dir, "reports", s.pending, "runs", len(s.runs), "bytes", s.size-s.off)
	return nil
}

// readCursor returns the saved cursor, or the start of the spool.
func (s *spool) readCursor() spoolPos {
	var cur spoolPos
	b, err := os.ReadFile(filepath.Join(s.dir, spoolCursorName))
	if errors.Is(err, fs.ErrNotExist) {
		return cur
	}
	if err == nil {
		err = json.Unmarshal(b, &cur)
	}
	if err != nil || cur.Offset < 0 {
		// Sending everything again is safe: jobd skips duplicates.
		s.log.Warn("unreadable spool cursor; sending the whole spool", "err", err)
		return spoolPos{}
	}
	return cur
}

// scanLocked counts the reports of seg from offset from and sets its size
// to the end of its last whole line, truncating the file there when it is
// the newest segment.
func (s *spool) scanLocked(seg *segment, from int64, newest bool) error {
	f, err := os.Open(seg.path)
	if err != nil {
		return fmt.Errorf("read spool: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("read spool: %w", err)
	}
	from = min(from, fi.Size())
	r := bufio.NewReader(io.NewSectionReader(f, from, fi.Size()-from))
	pos := from
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			if rr, ok := s.decode(seg, pos, line); ok {
				s.runs[rr.RunID]++
				s.pending++
			}
			pos += int64(len(line))
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read spool %s: %w", seg.path, err)
		}
	}
	seg.size = pos
	if pos < fi.Size() {
		s.log.Warn("dropping the torn end of a spool file (the agent stopped while writing it)",
			"file", seg.path, "offset", pos, "bytes", fi.Size()-pos)
		if newest {
			if err := os.Truncate(seg.path, pos); err != nil {
				return fmt.Errorf("truncate spool: %w", err)
			}
		}
	}
	return nil
}

// decode parses one spooled line; an unreadable one is logged and skipped.
func (s *spool) decode(seg *segment, off int64, line []byte) (api.RunReport, bool) {
	var rr api.RunReport
	err := json.Unmarshal(line, &rr)
	if err == nil && rr.RunID == "" {
		err = errors.New("no run id")
	}
	if err != nil {
		s.log.Error("skipping an unreadable report in the spool", "file", seg.path, "offset", off, "err", err)
		return rr, false
	}
	return rr, true
}

// empty reports whether every spooled report was acknowledged.
func (s *spool) empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unackedLocked() == 0
}

// unackedLocked is the size of the reports not acknowledged: the bytes of
// the segments, but those of the first one before the cursor.
func (s *spool) unackedLocked() int64 { return s.size - s.off }

// stats returns the reports waiting in the spool and their bytes.
func (s *spool) stats() (reports int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending, s.unackedLocked()
}

// heldRuns returns the ids of the runs with reports in the spool.
func (s *spool) heldRuns() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.runs))
	for id := range s.runs {
		ids = append(ids, id)
	}
	return ids
}

// changedChan returns a channel closed on the next append, ack or notify.
func (s *spool) changedChan() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// notify wakes whoever waits on changedChan.
func (s *spool) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notifyLocked()
}

func (s *spool) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// append writes batch at the end of the spool and fsyncs it. While the
// spool is full it waits for room, or until ctx is done: it checks ctx only
// then, so a batch that fits is written even when ctx is done. A spool
// that is empty takes any batch. On error nothing of batch is in the
// spool.
func (s *spool) append(ctx context.Context, batch []api.RunReport) error {
	return s.write(ctx, batch, true)
}

// appendOverLimit is append for a stopping agent: it does not wait for
// room, since losing reports is worse than going over the limit once.
func (s *spool) appendOverLimit(batch []api.RunReport) error {
	return s.write(context.Background(), batch, false)
}

func (s *spool) write(ctx context.Context, batch []api.RunReport, limit bool) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range batch {
		if err := enc.Encode(&batch[i]); err != nil {
			return fmt.Errorf("encode report: %w", err)
		}
	}
	n := int64(buf.Len())

	s.mu.Lock()
	defer s.mu.Unlock()
	for limit && !s.closed && s.unackedLocked() > 0 && s.size+n > s.maxBytes {
		if !s.full {
			s.full = true
			s.log.Error("report spool full: no jobd has taken reports for a long time; reports now wait in memory, and jobs writing output will block",
				"dir", s.dir, "max_bytes", s.maxBytes, "reports", s.pending)
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
			s.mu.Lock()
		case <-ctx.Done():
			s.mu.Lock()
			return fmt.Errorf("wait for room in the report spool: %w", context.Cause(ctx))
		}
	}
	if s.closed {
		return errSpoolClosed
	}
	if s.full {
		s.full = false
		s.log.Info("report spool has room again", "reports", s.pending)
	}
	if err := s.writeLocked(buf.Bytes()); err != nil {
		return err
	}
	for i := range batch {
		s.runs[batch[i].RunID]++
	}
	s.pending += len(batch)
	s.notifyLocked()
	return nil
}

// writeLocked appends b to the newest segment, or to a new one, and syncs
// it.
func (s *spool) writeLocked(b []byte) error {
	if s.w == nil || s.segs[len(s.segs)-1].size >= s.segBytes {
		if err := s.rotateLocked(); err != nil {
			return err
		}
	}
	seg := s.segs[len(s.segs)-1]
	n, err := s.w.Write(b)
	if err == nil {
		err = s.w.Sync()
	}
	if err != nil {
		// Take the partial write back; either way, a file that failed to
		// write or sync is not trusted with more: the next append starts a
		// new segment.
		if n > 0 {
			if terr := s.w.Truncate(seg.size); terr != nil {
				s.log.Error("cannot take back a failed spool write; the next start will skip it", "file", seg.path, "err", terr)
			}
		}
		s.w.Close()
		s.w = nil
		return fmt.Errorf("write report spool: %w", err)
	}
	seg.size += int64(n)
	s.size += int64(n)
	return nil
}

// rotateLocked starts a new segment for appends.
func (s *spool) rotateLocked() error {
	seq := s.nextSeq
	path := filepath.Join(s.dir, fmt.Sprintf("%s%020d%s", segmentPrefix, seq, segmentSuffix))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("create spool file: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		removeFile(s.log, path)
		return fmt.Errorf("create spool file: %w", err)
	}
	s.nextSeq++
	if s.w != nil {
		s.w.Close()
	}
	s.w = f
	s.segs = append(s.segs, &segment{seq: seq, path: path})
	return nil
}

// spoolRead is a batch read from the spool.
type spoolRead struct {
	reports []api.RunReport
	// end is the position after the batch (and after unreadable lines
	// skipped); ack it once jobd acknowledged the reports.
	end spoolPos
}

// next reads the oldest reports not acknowledged, as many as fit in
// maxLen reports and maxBytes of JSON but at least one. ok is false when
// there is nothing to read. Only the resender calls next and ack.
func (s *spool) next(maxLen int, maxBytes int) (rd spoolRead, ok bool, err error) {
	s.mu.Lock()
	if len(s.segs) == 0 {
		s.mu.Unlock()
		return rd, false, nil
	}
	seg, off, more := *s.segs[0], s.off, len(s.segs) > 1
	s.mu.Unlock()
	// The bytes up to seg.size are written for good: reading them needs no
	// lock, and only ack removes the segment.
	f, err := os.Open(seg.path)
	if err != nil {
		return rd, false, fmt.Errorf("read spool: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(io.NewSectionReader(f, off, seg.size-off))
	pos, size := off, 0
	for len(rd.reports) < maxLen {
		line, err := r.ReadBytes('\n')
		if len(line) == 0 || line[len(line)-1] != '\n' {
			if err == nil || errors.Is(err, io.EOF) {
				break
			}
			return rd, false, fmt.Errorf("read spool %s: %w", seg.path, err)
		}
		if len(rd.reports) > 0 && size+len(line) > maxBytes {
			break
		}
		if rr, ok := s.decode(&seg, pos, line); ok {
			rd.reports = append(rd.reports, rr)
			size += len(line)
		}
		pos += int64(len(line))
	}
	rd.end = spoolPos{Segment: seg.seq, Offset: pos}
	// Nothing read from a first segment wholly acknowledged still moves
	// the cursor on to the next one.
	return rd, pos > off || more, nil
}

// ack marks the reports of rd acknowledged: it moves the cursor past them,
// deletes the segments left behind, and reports whether the spool is empty
// now.
func (s *spool) ack(rd spoolRead) (empty bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range rd.reports {
		id := rd.reports[i].RunID
		if s.runs[id]--; s.runs[id] <= 0 {
			delete(s.runs, id)
		}
	}
	s.pending = max(0, s.pending-len(rd.reports))
	for len(s.segs) > 0 && s.segs[0].seq < rd.end.Segment {
		s.removeFirstLocked()
	}
	if len(s.segs) > 0 && s.segs[0].seq == rd.end.Segment {
		s.off = max(s.off, rd.end.Offset)
	}
	defer s.notifyLocked()
	if s.advanceLocked() {
		s.resetLocked()
		return true
	}
	s.writeCursorLocked()
	return false
}

// advanceLocked deletes the segments before the cursor that are wholly
// acknowledged, and reports whether everything is.
func (s *spool) advanceLocked() (empty bool) {
	for len(s.segs) > 1 && s.off >= s.segs[0].size {
		s.removeFirstLocked()
	}
	return len(s.segs) == 0 || (len(s.segs) == 1 && s.off >= s.segs[0].size)
}

func (s *spool) removeFirstLocked() {
	seg := s.segs[0]
	removeFile(s.log, seg.path)
	s.size -= seg.size
	s.segs = s.segs[1:]
	s.off = 0
}

// resetLocked deletes every spool file but the lock: all was acknowledged.
func (s *spool) resetLocked() {
	if s.w != nil {
		s.w.Close()
		s.w = nil
	}
	for _, seg := range s.segs {
		removeFile(s.log, seg.path)
	}
	removeFile(s.log, filepath.Join(s.dir, spoolCursorName))
	if s.pending > 0 || len(s.runs) > 0 {
		s.log.Warn("report spool emptied with reports unaccounted for (unreadable lines?)", "reports", s.pending)
	}
	s.segs, s.off, s.size, s.pending = nil, 0, 0, 0
	clear(s.runs)
}

// writeCursorLocked saves the cursor, replacing the file at once. It is
// not synced: a lost update only means duplicates sent after a crash.
func (s *spool) writeCursorLocked() {
	b, _ := json.Marshal(spoolPos{Segment: s.segs[0].seq, Offset: s.off})
	path := filepath.Join(s.dir, spoolCursorName)
	tmp := path + ".tmp"
	err := os.WriteFile(tmp, b, 0o600)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		s.log.Warn("save spool cursor; reports acknowledged since the last save would be sent again after a restart", "err", err)
	}
}

// syncDir fsyncs a directory, so a file created in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func removeFile(log *slog.Logger, path string) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		log.Warn("remove spool file", "file", path, "err", err)
	}
}
