package daemon

import (
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/jobd/jobd/api"
)

// candidate is an executor the router may choose, with its load.
type candidate struct {
	e *execEntry
	// free is slots minus the runs jobd has handed it and not seen finish.
	free int
	// uses and lastUsed count the runs of the job being routed that went
	// to this executor (least_frequently_used, least_recently_used).
	uses     int64
	lastUsed time.Time
}

// route picks the executors for one run of job among cands, which are the
// online executors of the job's group that match its selector, ordered by
// registration (id). It returns nil when it picks none; sharding_broadcast
// returns every candidate. rr is the router's round-robin counter for the
// job. The choice only considers executors with a free slot, except for
// sharding_broadcast.
func route(strategy, jobName string, cands []candidate, rr uint64) []*execEntry {
	if strategy == api.RouteShardingBroadcast {
		out := make([]*execEntry, len(cands))
		for i, c := range cands {
			out[i] = c.e
		}
		return out
	}
	free := make([]candidate, 0, len(cands))
	for _, c := range cands {
		if c.free > 0 {
			free = append(free, c)
		}
	}
	if len(free) == 0 {
		return nil
	}
	pick := func(c candidate) []*execEntry { return []*execEntry{c.e} }
	switch strategy {
	case api.RouteFirst, api.RouteFailover:
		// failover: the first executor in order that is healthy and has a
		// free slot; first: the first that has a free slot.
		return pick(free[0])
	case api.RouteLast:
		return pick(free[len(free)-1])
	case api.RouteRandom:
		return pick(free[rand.IntN(len(free))])
	case api.RouteConsistentHash:
		return pick(rendezvous(jobName, free))
	case api.RouteLeastFrequentlyUsed:
		return pick(slices.MinFunc(free, func(a, b candidate) int {
			return cmpInt64(a.uses, b.uses)
		}))
	case api.RouteLeastRecentlyUsed:
		return pick(slices.MinFunc(free, func(a, b candidate) int {
			return a.lastUsed.Compare(b.lastUsed)
		}))
	case api.RouteBusyover:
		// The least busy executor: the most free slots.
		return pick(slices.MaxFunc(free, func(a, b candidate) int { return a.free - b.free }))
	default: // round_robin
		return pick(free[rr%uint64(len(free))])
	}
}

// rendezvous picks by highest-random-weight hashing, so a job keeps its
// executor while the candidate set is stable and moves as little as
// possible when it changes.
func rendezvous(key string, cands []candidate) candidate {
	best, bestW := cands[0], uint64(0)
	for i, c := range cands {
		h := fnv.New64a()
		h.Write([]byte(key))
		h.Write([]byte{0})
		h.Write([]byte(c.e.id))
		if w := h.Sum64(); i == 0 || w > bestW {
			best, bestW = c, w
		}
	}
	return best
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// matchSelector reports whether labels satisfy every key=value of sel.
func matchSelector(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}
