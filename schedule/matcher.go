package schedule

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/adhocore/gronx"
)

// matcher is a compiled cron expression: which wall-clock times it matches.
//
// gronx is the source of truth. The second, minute, hour, month and year
// fields are pure value tests in gronx (only the day-of-month and day-of-week
// fields know about L, W and #), so their sets are computed once by asking
// gronx about every value. Whether a calendar day matches depends, in gronx,
// only on the day of the month, the month's length and the weekday of its
// first day, so day masks are computed by asking gronx about each day of one
// month of that shape, lazily, and cached in 28 slots. TestMatcher_GronxEquivalence
// checks the result against gronx.IsDue and gronx.NextTickAfter.
type matcher struct {
	seconds, minutes, hours uint64 // bit v set: the field matches value v
	months                  uint64 // bits 1-12
	years                   *[maxYear/64 + 1]uint64
	dom, dow                string // day-of-month and day-of-week segments, for gronx
	dayAll                  bool   // both day segments are wildcards

	firstSec, lastSec, firstMin, lastMin int
	nSec, nMin, perDay                   int64
	everyHour                            bool // the hour field matches all 24 hours

	// classes caches day masks (bits 1-31) by month length (28-31) and
	// weekday of the 1st; bit 63 marks a computed slot. Racing writers store
	// the same value, so atomics suffice.
	classes [28]atomic.Uint64
}

const classComputed = uint64(1) << 63

// fieldNames names gronx's segment positions for error messages.
var fieldNames = [7]string{"second", "minute", "hour", "day of month", "month", "day of week", "year"}

// validationRef is the fixed reference used to validate segment syntax.
var validationRef = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)

// compile validates expr (already macro-expanded) and builds its matcher.
// Errors wrap ErrInvalidCron or ErrImpossibleCron.
func compile(expr string) (*matcher, error) {
	segs, err := gronx.Segments(expr)
	if err != nil {
		return nil, fmt.Errorf("%w: want 5, 6 or 7 fields, got %d", ErrInvalidCron, len(strings.Fields(expr)))
	}
	for pos, seg := range segs {
		for part := range strings.SplitSeq(seg, ",") {
			if err := validatePart(part, pos); err != nil {
				return nil, fmt.Errorf("%w: %s %q: %w", ErrInvalidCron, fieldNames[pos], seg, err)
			}
		}
	}
	if !gronx.IsValid(expr) {
		return nil, ErrInvalidCron
	}

	c := &matcher{dom: segs[3], dow: segs[5]}
	c.seconds = valueSet(segs[0], 0, 0, 59)
	c.minutes = valueSet(segs[1], 1, 0, 59)
	c.hours = valueSet(segs[2], 2, 0, 23)
	c.months = valueSet(segs[4], 4, 1, 12)
	c.dayAll = isWildcard(c.dom) && isWildcard(c.dow)
	if len(segs) > 6 && !isWildcard(segs[6]) {
		c.years = yearSet(segs[6])
	}
	c.everyHour = c.hours == 1<<24-1
	c.firstSec, _ = nextBit(c.seconds, 0)
	c.lastSec, _ = prevBit(c.seconds, 59)
	c.firstMin, _ = nextBit(c.minutes, 0)
	c.lastMin, _ = prevBit(c.minutes, 59)
	c.nSec, c.nMin = countBelow(c.seconds, 64), countBelow(c.minutes, 64)
	c.perDay = c.nSec * c.nMin * countBelow(c.hours, 64)
	if !c.possible() {
		return nil, fmt.Errorf("%w: no such date", ErrImpossibleCron)
	}
	return c, nil
}

func isWildcard(seg string) bool { return seg == "*" || seg == "?" }

// validatePart checks one comma-separated part of a segment. gronx checks a
// list lazily (a part after a matching one is never parsed), so each part is
// checked on its own; L, W and # get the range checks gronx leaves out.
func validatePart(part string, pos int) error {
	checker := &gronx.SegmentChecker{}
	checker.SetRef(validationRef)
	if _, err := checker.CheckDue(part, pos); err != nil {
		msg := err.Error()
		if i := strings.Index(msg, ": "); strings.HasPrefix(msg, "segment#") && i > 0 {
			msg = msg[i+2:]
		}
		return errors.New(msg)
	}
	switch {
	case pos == 3 && strings.Contains(part, "W"):
		n, ok := strings.CutSuffix(part, "W")
		if v, err := strconv.Atoi(n); !ok || err != nil || v < 1 || v > 31 {
			return fmt.Errorf("%q: want nW with n in 1-31", part)
		}
	case pos == 5 && strings.Contains(part, "L"):
		n, ok := strings.CutSuffix(part, "L")
		if v, err := strconv.Atoi(n); !ok || err != nil || v < 0 || v > 7 {
			return fmt.Errorf("%q: want nL with n in 0-7", part)
		}
	case pos == 5 && strings.Contains(part, "#"):
		d, k, _ := strings.Cut(part, "#")
		dv, err1 := strconv.Atoi(d)
		kv, err2 := strconv.Atoi(k)
		if err1 != nil || err2 != nil || dv < 0 || dv > 7 || kv < 1 || kv > 5 {
			return fmt.Errorf("%q: want d#k with d in 0-7 and k in 1-5", part)
		}
	}
	return nil
}

// refFor returns a reference time whose field at gronx position pos is v.
func refFor(pos, v int) time.Time {
	switch pos {
	case 0:
		return time.Date(2001, 1, 1, 0, 0, v, 0, time.UTC)
	case 1:
		return time.Date(2001, 1, 1, 0, v, 0, 0, time.UTC)
	case 2:
		return time.Date(2001, 1, 1, v, 0, 0, 0, time.UTC)
	case 4:
		return time.Date(2001, time.Month(v), 1, 0, 0, 0, 0, time.UTC)
	default:
		return time.Date(v, 1, 1, 0, 0, 0, 0, time.UTC)
	}
}

// valueSet asks gronx which values lo..hi the segment at pos matches.
func valueSet(seg string, pos, lo, hi int) uint64 {
	var set uint64
	checker := &gronx.SegmentChecker{}
	for v := lo; v <= hi; v++ {
		if !isWildcard(seg) {
			checker.SetRef(refFor(pos, v))
			if ok, err := checker.CheckDue(seg, pos); !ok || err != nil {
				continue
			}
		}
		set |= 1 << uint(v)
	}
	return set
}

// yearSet asks gronx which years minYear..maxYear the year segment matches.
func yearSet(seg string) *[maxYear/64 + 1]uint64 {
	var set [maxYear/64 + 1]uint64
	checker := &gronx.SegmentChecker{}
	for y := minYear; y <= maxYear; y++ {
		checker.SetRef(refFor(6, y))
		if ok, err := checker.CheckDue(seg, 6); ok && err == nil {
			set[y/64] |= 1 << uint(y%64)
		}
	}
	return &set
}

func (c *matcher) yearOK(y int) bool {
	if y < minYear || y > maxYear {
		return false
	}
	return c.years == nil || c.years[y/64]>>uint(y%64)&1 == 1
}

func (c *matcher) monthOK(m int) bool { return c.months>>uint(m)&1 == 1 }

// dayMask returns the days (bits 1-31) of month y-m that the day-of-month
// and day-of-week fields match; month and year are checked by the caller.
func (c *matcher) dayMask(y, m int) uint64 {
	n := daysIn(y, m)
	if c.dayAll {
		return (uint64(1)<<uint(n+1) - 1) &^ 1
	}
	slot := &c.classes[(n-28)*7+weekdayOf(monthStart(y, m))]
	if v := slot.Load(); v&classComputed != 0 {
		return v &^ classComputed
	}
	var mask uint64
	g := gronx.Gronx{C: &gronx.SegmentChecker{}}
	segs := []string{"*", "*", "*", c.dom, "*", c.dow}
	for d := 1; d <= n; d++ {
		g.C.SetRef(time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC))
		if ok, err := g.SegmentsDue(segs); ok && err == nil {
			mask |= 1 << uint(d)
		}
	}
	slot.Store(mask | classComputed)
	return mask
}

// possible reports whether the expression matches at least one wall time
// in years minYear..maxYear. It is exact: a day mask depends only on the
// month's length and first weekday, and every such shape occurs in every
// month (February: both lengths) within a 400-year cycle.
func (c *matcher) possible() bool {
	if c.seconds == 0 || c.minutes == 0 || c.hours == 0 || c.months == 0 {
		return false
	}
	if c.years != nil {
		for y := minYear; y <= maxYear; y++ {
			if !c.yearOK(y) {
				continue
			}
			for m := 1; m <= 12; m++ {
				if c.monthOK(m) && c.dayMask(y, m) != 0 {
					return true
				}
			}
		}
		return false
	}
	for m := 1; m <= 12; m++ {
		if !c.monthOK(m) {
			continue
		}
		// 2001-2040 holds every (length, first weekday) shape of every month.
		for y := 2001; y <= 2040; y++ {
			if c.dayMask(y, m) != 0 {
				return true
			}
		}
	}
	return false
}
