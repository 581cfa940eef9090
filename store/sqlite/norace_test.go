//go:build !race

package sqlite

// queryPlanRuns is how many runs TestQueryPlans stores.
const queryPlanRuns = 100_000
