package schedule

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/adhocore/gronx"
)

// CronSchedule fires at the wall-clock times a cron expression matches in an
// IANA time zone, with the DST rules described in the package doc. It is
// safe for concurrent use. Build it with Parse.
type CronSchedule struct {
	expr string // as written, whitespace collapsed
	loc  *time.Location
	m    *matcher
}

var (
	// minInstant and maxInstant bound the instants (unix seconds) searched;
	// they keep every wall time of years minYear..maxYear in reach.
	minInstant = minWall - 2*secondsPerDay
	maxInstant = maxWall + 2*secondsPerDay
)

// transitionReach bounds (seconds) how far a wall time is from its instant
// (UTC offsets stay within ±15h) and how far a zone transition moves the
// wall clock (at most a day, Samoa 2011).
const transitionReach = 2 * secondsPerDay

// parseCron validates expr and compiles it for loc.
func parseCron(expr string, loc *time.Location) (*CronSchedule, error) {
	text := strings.Join(strings.Fields(expr), " ")
	if text == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidCron)
	}
	src := text
	if strings.HasPrefix(text, "@") {
		macro := strings.ToLower(text)
		switch {
		case macro == "@midnight":
			src = "0 0 * * *"
		case macro == "@every" || strings.HasPrefix(macro, "@every "):
			return nil, fmt.Errorf("%w: @every is not cron syntax; use the every schedule kind", ErrInvalidCron)
		default:
			if _, err := gronx.Segments(text); err != nil {
				return nil, fmt.Errorf("%w: unknown macro (want @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)", ErrInvalidCron)
			}
		}
	}
	m, err := compileCached(src)
	if err != nil {
		return nil, err
	}
	return &CronSchedule{expr: text, loc: loc, m: m}, nil
}

// compiledCache shares matchers between schedules with the same expression
// (jobs mostly use a few): a matcher is immutable but for its day-mask
// cache, which is safe to share. It stops growing at maxCompiledCache
// entries, so distinct expressions cannot exhaust memory.
var (
	compiledCache sync.Map // string -> *matcher
	compiledCount atomic.Int64
)

const maxCompiledCache = 4096

// compileCached is compile with compiledCache in front.
func compileCached(src string) (*matcher, error) {
	if m, ok := compiledCache.Load(src); ok {
		return m.(*matcher), nil
	}
	m, err := compile(src)
	if err != nil {
		return nil, err
	}
	if compiledCount.Add(1) <= maxCompiledCache {
		compiledCache.Store(src, m)
	}
	return m, nil
}

// Expr returns the cron expression as written (whitespace collapsed).
func (s *CronSchedule) Expr() string { return s.expr }

// Location returns the time zone the expression is evaluated in.
func (s *CronSchedule) Location() *time.Location { return s.loc }

// Kind returns KindCron.
func (s *CronSchedule) Kind() string { return KindCron }

// String renders the schedule as "cron EXPR ZONE", e.g.
// "cron 0 */5 * * * * Europe/Paris".
func (s *CronSchedule) String() string { return "cron " + s.expr + " " + s.loc.String() }

// Next returns the first fire time strictly after t, in UTC, and false if
// there is none before year 10000.
func (s *CronSchedule) Next(t time.Time) (time.Time, bool) {
	if !t.Before(maxTime) {
		return time.Time{}, false
	}
	u, ok := s.next(max(t.Unix(), minInstant) + 1) // fire times are whole seconds
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(u, 0).UTC(), true
}

// Prev returns the last fire time strictly before t, in UTC, and false if
// there is none after year 1.
func (s *CronSchedule) Prev(t time.Time) (time.Time, bool) {
	if t.Before(minTime) {
		return time.Time{}, false
	}
	to := min(t.Unix(), maxInstant)
	if t.Nanosecond() == 0 {
		to--
	}
	u, ok := s.prev(to)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(u, 0).UTC(), true
}

// period is a stretch of instants [start, end) (unix seconds) over which the
// zone's UTC offset (seconds) is constant, so instants map to wall seconds
// by adding off, monotonically.
type period struct{ start, end, off int64 }

// periodAt returns the zone period holding instant u.
func (s *CronSchedule) periodAt(u int64) period {
	p := period{start: minInstant, end: maxInstant}
	if s.loc == time.UTC {
		return p
	}
	t := time.Unix(u, 0).In(s.loc)
	_, off := t.Zone()
	p.off = int64(off)
	start, end := t.ZoneBounds()
	if !start.IsZero() {
		p.start = max(start.Unix(), minInstant)
	}
	if !end.IsZero() {
		p.end = min(end.Unix(), maxInstant)
	}
	p.start = min(p.start, u)
	if p.end <= u {
		// Past the zone's last listed transition, Go derives bounds from
		// the TZ rule string and ends each year 365 days after Jan 1 UTC
		// (go1.26 zoneinfo.go tzset), so on Dec 31 of a leap year the
		// reported period ends before u. The bounds are only split points,
		// not transitions: continue into the next UTC day's period.
		next := (floorDiv(u, secondsPerDay) + 1) * secondsPerDay
		t2 := time.Unix(next, 0).In(s.loc)
		p.end = next
		if _, off2 := t2.Zone(); int64(off2) == p.off {
			if _, end2 := t2.ZoneBounds(); end2.IsZero() {
				p.end = maxInstant
			} else if e := end2.Unix(); e > next {
				p.end = min(e, maxInstant)
			}
		}
	}
	return p
}

func (s *CronSchedule) offsetAt(u int64) int64 {
	_, off := time.Unix(u, 0).In(s.loc).Zone()
	return int64(off)
}

// transition describes how period p began, for schedules whose hour field
// is restricted (see the package doc): walls below repeatBelow were already
// shown by the previous period (fall back), and gapFire is set when a wall
// time the clock jumped over (spring forward) matches, so it fires at
// p.start. Schedules that match every hour follow real time: no exclusions,
// no gap fires.
func (s *CronSchedule) transition(p period) (repeatBelow int64, gapFire bool) {
	repeatBelow = minWall
	if s.m.everyHour || p.start <= minInstant {
		return repeatBelow, false
	}
	// The previous period is taken to be the one just before p.start. Go
	// also splits periods where the offset does not change (see periodAt);
	// no real transition lies within transitionReach of such a split.
	prevOff := s.offsetAt(p.start - 1)
	switch {
	case prevOff > p.off:
		repeatBelow = p.start + prevOff
	case prevOff < p.off:
		_, gapFire = s.m.nextWall(p.start+prevOff, p.start+p.off)
	}
	return repeatBelow, gapFire
}

// next returns the first fire instant at or after from.
func (s *CronSchedule) next(from int64) (int64, bool) {
	from = max(from, minInstant)
	for from < maxInstant {
		// Skip stretches without any matching wall time: a fire's wall
		// time is within transitionReach of its instant.
		w, ok := s.m.nextWall(from-transitionReach, maxWall)
		if !ok {
			return 0, false
		}
		from = max(from, w-transitionReach)
		p := s.periodAt(from)
		lo := from + p.off
		if from-p.start < transitionReach {
			repeatBelow, gapFire := s.transition(p)
			if gapFire && p.start == from {
				return from, true
			}
			lo = max(lo, repeatBelow)
		}
		if w, ok := s.m.nextWall(lo, p.end+p.off); ok {
			return w - p.off, true
		}
		from = p.end
	}
	return 0, false
}

// prev returns the last fire instant at or before to.
func (s *CronSchedule) prev(to int64) (int64, bool) {
	to = min(to, maxInstant-1)
	for to >= minInstant {
		w, ok := s.m.prevWall(minWall, to+transitionReach)
		if !ok {
			return 0, false
		}
		to = min(to, w+transitionReach)
		p := s.periodAt(to)
		repeatBelow, gapFire := s.transition(p)
		lo := max(p.start+p.off, repeatBelow)
		if w, ok := s.m.prevWall(lo, to+p.off); ok {
			return w - p.off, true
		}
		if gapFire {
			return p.start, true
		}
		to = p.start - 1
	}
	return 0, false
}

// count returns how many fire instants lie in [lo, hi], by arithmetic per
// zone period (see matcher.countWalls), never by listing them.
func (s *CronSchedule) count(lo, hi int64) int64 {
	lo, hi = max(lo, minInstant), min(hi, maxInstant-1)
	var n int64
	for lo <= hi {
		p := s.periodAt(lo)
		wlo := lo + p.off
		if lo-p.start < transitionReach {
			repeatBelow, gapFire := s.transition(p)
			if gapFire && p.start == lo && !s.m.wallMatches(lo+p.off) {
				n++ // the gap's fire, unless the first real wall time fires anyway
			}
			wlo = max(wlo, repeatBelow)
		}
		n += s.m.countWalls(wlo, min(hi, p.end-1)+p.off)
		lo = p.end
	}
	return n
}

// times lists up to limit fire instants in [lo, hi].
func (s *CronSchedule) times(lo, hi int64, limit int) []time.Time {
	var out []time.Time
	for len(out) < limit {
		u, ok := s.next(lo)
		if !ok || u > hi {
			break
		}
		out = append(out, time.Unix(u, 0).UTC())
		lo = u + 1
	}
	return out
}
