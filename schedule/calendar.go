package schedule

import "math/bits"

// This file holds the zone-free half of cron evaluation: proleptic Gregorian
// date arithmetic on "wall seconds" (seconds since 1970-01-01 00:00:00 of a
// naive local calendar, as if the zone were UTC) and the searches over the
// wall times an expression matches. Which wall times match is decided by
// gronx (see matcher in cron.go); this file only walks the calendar.

const (
	secondsPerDay = 86400

	// minYear and maxYear bound the calendar that schedules are evaluated
	// on; gronx's year field accepts 0-9999, and year 0 has no use.
	minYear = 1
	maxYear = 9999
)

var (
	// minWall is the first wall second considered: 0001-01-01 00:00:00.
	minWall = daysFromCivil(minYear, 1, 1) * secondsPerDay
	// maxWall is the first wall second not considered: 10000-01-01 00:00:00.
	maxWall = daysFromCivil(maxYear+1, 1, 1) * secondsPerDay
)

// floorDiv returns a/b rounded towards negative infinity (b > 0).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// daysFromCivil returns the number of days from 1970-01-01 to y-m-d in the
// proleptic Gregorian calendar (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	yy := int64(y)
	if m <= 2 {
		yy--
	}
	era := floorDiv(yy, 400)
	yoe := yy - era*400
	mp := int64((m + 9) % 12)
	doy := (153*mp+2)/5 + int64(d) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(z int64) (y, m, d int) {
	z += 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = int(doy - (153*mp+2)/5 + 1)
	if mp < 10 {
		m = int(mp + 3)
	} else {
		m = int(mp - 9)
	}
	y = int(yoe + era*400)
	if m <= 2 {
		y++
	}
	return y, m, d
}

// weekdayOf returns the weekday of a day number, 0 = Sunday.
func weekdayOf(day int64) int {
	r := (day + 4) % 7 // 1970-01-01 was a Thursday
	if r < 0 {
		r += 7
	}
	return int(r)
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

// daysIn returns the length of month m of year y.
func daysIn(y, m int) int {
	switch m {
	case 2:
		if isLeap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// splitWall splits a wall second into a day number and a second of the day.
func splitWall(w int64) (day, sod int64) {
	day = floorDiv(w, secondsPerDay)
	return day, w - day*secondsPerDay
}

// nextBit returns the lowest set bit of mask at index from or above.
func nextBit(mask uint64, from int) (int, bool) {
	if from >= 64 {
		return 0, false
	}
	if from < 0 {
		from = 0
	}
	m := mask & (^uint64(0) << uint(from))
	if m == 0 {
		return 0, false
	}
	return bits.TrailingZeros64(m), true
}

// prevBit returns the highest set bit of mask at index upto or below.
func prevBit(mask uint64, upto int) (int, bool) {
	if upto < 0 {
		return 0, false
	}
	m := mask
	if upto < 63 {
		m &= uint64(1)<<uint(upto+1) - 1
	}
	if m == 0 {
		return 0, false
	}
	return bits.Len64(m) - 1, true
}

// countBelow returns the number of set bits of mask below index x.
func countBelow(mask uint64, x int) int64 {
	if x <= 0 {
		return 0
	}
	if x < 64 {
		mask &= uint64(1)<<uint(x) - 1
	}
	return int64(bits.OnesCount64(mask))
}

// monthStart returns the day number of the first day of month m of year y.
func monthStart(y, m int) int64 { return daysFromCivil(y, m, 1) }

// nextMonth returns the month after y-m.
func nextMonth(y, m int) (int, int) {
	if m == 12 {
		return y + 1, 1
	}
	return y, m + 1
}

// prevMonth returns the month before y-m.
func prevMonth(y, m int) (int, int) {
	if m == 1 {
		return y - 1, 12
	}
	return y, m - 1
}

// nextTOD returns the first second of the day at or after sod that the
// second, minute and hour fields match.
func (c *matcher) nextTOD(sod int64) (int64, bool) {
	h, mi, s := int(sod/3600), int(sod/60%60), int(sod%60)
	if c.hours>>uint(h)&1 == 1 {
		if c.minutes>>uint(mi)&1 == 1 {
			if ns, ok := nextBit(c.seconds, s); ok {
				return int64(h*3600 + mi*60 + ns), true
			}
		}
		if nm, ok := nextBit(c.minutes, mi+1); ok {
			return int64(h*3600 + nm*60 + c.firstSec), true
		}
	}
	if nh, ok := nextBit(c.hours, h+1); ok {
		return int64(nh*3600 + c.firstMin*60 + c.firstSec), true
	}
	return 0, false
}

// prevTOD returns the last second of the day at or before sod that the
// second, minute and hour fields match.
func (c *matcher) prevTOD(sod int64) (int64, bool) {
	h, mi, s := int(sod/3600), int(sod/60%60), int(sod%60)
	if c.hours>>uint(h)&1 == 1 {
		if c.minutes>>uint(mi)&1 == 1 {
			if ps, ok := prevBit(c.seconds, s); ok {
				return int64(h*3600 + mi*60 + ps), true
			}
		}
		if pm, ok := prevBit(c.minutes, mi-1); ok {
			return int64(h*3600 + pm*60 + c.lastSec), true
		}
	}
	if ph, ok := prevBit(c.hours, h-1); ok {
		return int64(ph*3600 + c.lastMin*60 + c.lastSec), true
	}
	return 0, false
}

// todUpTo returns how many matching seconds of a day are at or before sod.
func (c *matcher) todUpTo(sod int64) int64 {
	if sod < 0 {
		return 0
	}
	h, mi, s := int(sod/3600), int(sod/60%60), int(sod%60)
	n := countBelow(c.hours, h) * c.nMin * c.nSec
	if c.hours>>uint(h)&1 == 1 {
		n += countBelow(c.minutes, mi) * c.nSec
		if c.minutes>>uint(mi)&1 == 1 {
			n += countBelow(c.seconds, s+1)
		}
	}
	return n
}

// dayOK reports whether the year, month and day fields match day number day.
func (c *matcher) dayOK(day int64) bool {
	y, m, d := civilFromDays(day)
	return c.yearOK(y) && c.monthOK(m) && c.dayMask(y, m)>>uint(d)&1 == 1
}

// wallMatches reports whether the expression matches wall second w.
func (c *matcher) wallMatches(w int64) bool {
	if w < minWall || w >= maxWall {
		return false
	}
	day, sod := splitWall(w)
	h, mi, s := uint(sod/3600), uint(sod/60%60), uint(sod%60)
	return c.hours>>h&1 == 1 && c.minutes>>mi&1 == 1 && c.seconds>>s&1 == 1 && c.dayOK(day)
}

// nextWall returns the first matching wall second w with lo <= w < hi.
func (c *matcher) nextWall(lo, hi int64) (int64, bool) {
	lo, hi = max(lo, minWall), min(hi, maxWall)
	if lo >= hi {
		return 0, false
	}
	day, sod := splitWall(lo)
	y, m, d := civilFromDays(day)
	for day*secondsPerDay < hi {
		switch {
		case !c.yearOK(y):
			if y >= maxYear {
				return 0, false
			}
			y, m, d, sod = y+1, 1, 1, 0
			day = monthStart(y, m)
			continue
		case !c.monthOK(m):
			y, m = nextMonth(y, m)
			d, sod, day = 1, 0, monthStart(y, m)
			continue
		}
		nd, ok := nextBit(c.dayMask(y, m), d)
		if !ok {
			y, m = nextMonth(y, m)
			d, sod, day = 1, 0, monthStart(y, m)
			continue
		}
		if nd != d {
			day += int64(nd - d)
			d, sod = nd, 0
		}
		if tod, ok := c.nextTOD(sod); ok {
			if w := day*secondsPerDay + tod; w < hi {
				return w, true
			}
			return 0, false
		}
		d, sod, day = d+1, 0, day+1
	}
	return 0, false
}

// prevWall returns the last matching wall second w with lo <= w <= hi.
func (c *matcher) prevWall(lo, hi int64) (int64, bool) {
	lo, hi = max(lo, minWall), min(hi, maxWall-1)
	if lo > hi {
		return 0, false
	}
	day, sod := splitWall(hi)
	y, m, d := civilFromDays(day)
	for (day+1)*secondsPerDay > lo {
		switch {
		case !c.yearOK(y):
			if y <= minYear {
				return 0, false
			}
			y, m, d = y-1, 12, 31
			day, sod = daysFromCivil(y, m, d), secondsPerDay-1
			continue
		case !c.monthOK(m):
			y, m = prevMonth(y, m)
			d = daysIn(y, m)
			day, sod = daysFromCivil(y, m, d), secondsPerDay-1
			continue
		}
		pd, ok := prevBit(c.dayMask(y, m), d)
		if !ok || pd == 0 {
			y, m = prevMonth(y, m)
			d = daysIn(y, m)
			day, sod = daysFromCivil(y, m, d), secondsPerDay-1
			continue
		}
		if pd != d {
			day -= int64(d - pd)
			d, sod = pd, secondsPerDay-1
		}
		if tod, ok := c.prevTOD(sod); ok {
			if w := day*secondsPerDay + tod; w >= lo {
				return w, true
			}
			return 0, false
		}
		d, sod, day = d-1, secondsPerDay-1, day-1
	}
	return 0, false
}

// countWalls returns how many wall seconds w with lo <= w <= hi match. It
// does arithmetic per day and per month, so it is fast for any range.
func (c *matcher) countWalls(lo, hi int64) int64 {
	lo, hi = max(lo, minWall), min(hi, maxWall-1)
	if lo > hi {
		return 0
	}
	dLo, sLo := splitWall(lo)
	dHi, sHi := splitWall(hi)
	if dLo == dHi {
		if !c.dayOK(dLo) {
			return 0
		}
		return c.todUpTo(sHi) - c.todUpTo(sLo-1)
	}
	var n int64
	if c.dayOK(dLo) {
		n += c.perDay - c.todUpTo(sLo-1)
	}
	if c.dayOK(dHi) {
		n += c.todUpTo(sHi)
	}
	return n + c.perDay*c.countDays(dLo+1, dHi-1)
}

// countDays returns how many days in [from, to] the date fields match.
func (c *matcher) countDays(from, to int64) int64 {
	if from > to {
		return 0
	}
	var n int64
	y, m, d := civilFromDays(from)
	day := from
	for day <= to {
		switch {
		case !c.yearOK(y):
			y, m = y+1, 1
		case !c.monthOK(m):
			y, m = nextMonth(y, m)
		default:
			last := daysIn(y, m)
			if rest := to - day; rest < int64(last-d) {
				last = d + int(rest)
			}
			mask := c.dayMask(y, m) &^ (uint64(1)<<uint(d) - 1)
			if last < 63 {
				mask &= uint64(1)<<uint(last+1) - 1
			}
			n += int64(bits.OnesCount64(mask))
			y, m = nextMonth(y, m)
		}
		if y > maxYear {
			break
		}
		d, day = 1, monthStart(y, m)
	}
	return n
}
