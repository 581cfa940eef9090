// Package schedule turns a job's declared schedule (a Spec) into fire times.
//
// It imports nothing else of jobd. Parse validates a Spec and returns a
// Schedule; Next, Prev and Times compute fire times from it. Every time
// returned is an instant in UTC, truncated to the millisecond.
//
// # Kinds
//
//   - cron: a cron expression of 5 fields (minute hour day-of-month month
//     day-of-week), 6 (a leading seconds field) or 7 (seconds and a trailing
//     year), the macros @yearly @annually @monthly @weekly @daily @midnight
//     @hourly, and L, W and # as github.com/adhocore/gronx supports them
//     ("L" last day of the month, "15W" nearest weekday to the 15th, "5L"
//     last Friday, "5#2" second Friday). gronx decides which wall-clock times
//     match, evaluated in the Spec's IANA zone (TZ, default UTC); this package
//     maps those wall-clock times to instants. When both day fields are
//     restricted, gronx matches either (classic cron), unless the
//     day-of-week field is a */step or the day-of-month one starts with *.
//   - every: a fixed rate on a grid. Fire times are exactly Anchor + k*Every
//     for every integer k, negative included: the grid extends both ways
//     and does not depend on when anyone asks, so a restart, a late scan or
//     an edit of something else never moves it. A zero Anchor is the Unix
//     epoch in UTC, so "every 1h" fires on the hour. Every is at least 1s
//     and a whole number of milliseconds; Anchor is truncated to the
//     millisecond.
//   - delay: a fixed delay. The next fire is the previous run's finish plus
//     Delay (at least 1s); only the scheduler knows the finish, so Next
//     reports none and DelaySchedule.After computes it.
//   - at: one shot at At. An At in the past is valid; Next then reports none.
//   - manual: never fires by itself.
//
// # Validation
//
// Parse returns a *FieldError naming the user-facing field ("kind", "cron",
// "tz", "every", "anchor", "delay", "at"). A cron expression that parses but
// can never match, such as "0 0 31 4 *" or "0 0 30 2 *", is rejected with
// ErrImpossibleCron; the check is exact over the whole calendar, so
// "0 0 29 2 *" (leap days) is accepted. A 7-field expression whose years
// have all passed is accepted, like an at in the past, and never fires:
// validity must not depend on the clock, or a stored job could stop loading.
// Schedules are evaluated on years 1-9999; outside them there are no fire
// times.
//
// # Daylight saving time
//
// A cron expression names wall-clock times; a zone's transitions make some
// of them not exist and others exist twice. What happens depends on the
// hour field:
//
//   - Hour field restricted (e.g. "30 2 * * *", "0 9-17 * * 1-5"): each
//     matching wall-clock time fires once. A time skipped by a spring-forward
//     gap fires at the first instant after the gap (02:30 in New York on the
//     spring-forward day fires at 03:00 EDT, that day, rather than not at
//     all); several skipped times fire once, together, and not again if the
//     first wall time after the gap matches too. A time repeated by a
//     fall-back fires at its first occurrence only (01:30 fires at 01:30 EDT,
//     not again at 01:30 EST).
//   - Hour field matching every hour (e.g. "0 * * * *", "*/5 * * * *"): the
//     schedule follows real elapsed time. Times inside a gap do not fire
//     (there was no such hour), and a repeated hour fires twice: an hourly
//     job fires at 01:00 EDT and again at 01:00 EST, 25 times on a fall-back
//     day and 23 times on a spring-forward day.
//
// gronx alone would skip a daily 02:30 job to the next day on the
// spring-forward day; this package evaluates gronx on the zone-free calendar
// and applies the rules above itself.
//
// # Cost
//
// Next and Prev take well under a microsecond for common expressions.
// Times counts without listing (per grid index for every; per zone period,
// month and day for cron): a day of a per-second cron (86,400 fires)
// counts in about 0.2µs and a century of an hourly cron in a DST zone in
// about 0.1ms; only the times it returns are enumerated (a day of a
// per-second cron, all 86,400, in about 20ms). Parse caches compiled
// expressions, so parsing the many jobs that share one is cheap; compiling
// a new one takes tens of microseconds (about a millisecond with a year
// field, whose 9,999 values gronx is asked about).
package schedule
