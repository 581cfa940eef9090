//go:build race

package sqlite

// queryPlanRuns is smaller under the race detector, whose checkptr
// instrumentation makes the transpiled SQLite ~20x slower; the plans do
// not depend on it. The conformance suite still pages 100,000 runs.
const queryPlanRuns = 20_000
