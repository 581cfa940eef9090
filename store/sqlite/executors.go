package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jobd/jobd/store"
)

const executorCols = "id, grp, name, host, labels, version, slots, state, state_since, last_seen, registered_at"

// executorDefaultState is the state a registering executor gets when it names
// none.
const executorDefaultState = "online"

func scanExecutor(sc scanner) (*store.Executor, error) {
	var (
		e                       store.Executor
		labels                  string
		since, seen, registered sql.NullInt64
	)
	if err := sc.Scan(&e.ID, &e.Group, &e.Name, &e.Host, &labels, &e.Version, &e.Slots, &e.State,
		&since, &seen, &registered); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(labels), &e.Labels); err != nil {
		return nil, fmt.Errorf("executor %s labels: %w", e.ID, err)
	}
	e.StateSince, e.LastSeen, e.RegisteredAt = fromMS(since), fromMS(seen), fromMS(registered)
	return &e, nil
}

// newExecutorID returns 12 random hex characters.
func newExecutorID() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// ExecutorUpsert registers an executor by (Group, Name) and returns the
// stored row. A new executor gets e.ID if set, else a random 12-hex-digit
// id, and its group is created if it did not exist; a known one keeps its
// id and registration time and has its host, labels, version, slots,
// state, state time and last-seen time replaced. State defaults to
// "online"; StateSince and LastSeen default to now.
func (s *Store) ExecutorUpsert(ctx context.Context, e *store.Executor) (*store.Executor, error) {
	labels := e.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	lj, err := json.Marshal(labels)
	if err != nil {
		return nil, fmt.Errorf("register executor %s/%s: labels: %w", e.Group, e.Name, err)
	}
	state := e.State
	if state == "" {
		state = executorDefaultState
	}
	id := e.ID
	if id == "" {
		id = newExecutorID()
	}
	var out *store.Executor
	err = s.write(ctx, func(t *tx) error {
		now := s.nowMS()
		if _, err := t.exec("INSERT INTO groups (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING", e.Group, ms(now)); err != nil {
			return fmt.Errorf("create group: %w", err)
		}
		row, err := t.queryRow(`INSERT INTO executors (`+executorCols+`)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (grp, name) DO UPDATE SET host = excluded.host, labels = excluded.labels, version = excluded.version,
	slots = excluded.slots, state = excluded.state, state_since = excluded.state_since, last_seen = excluded.last_seen
RETURNING `+executorCols,
			id, e.Group, e.Name, e.Host, string(lj), e.Version, e.Slots, state,
			ms(orNow(e.StateSince, now)), ms(orNow(e.LastSeen, now)), ms(orNow(e.RegisteredAt, now)))
		if err != nil {
			return err
		}
		out, err = scanExecutor(row)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("register executor %s/%s: %w", e.Group, e.Name, mapErr(err))
	}
	return out, nil
}

// ExecutorGet returns the executor with id, or store.ErrNotFound.
func (s *Store) ExecutorGet(ctx context.Context, id string) (*store.Executor, error) {
	e, err := scanExecutor(s.r.QueryRowContext(ctx, "SELECT "+executorCols+" FROM executors WHERE id = ?", id))
	if err != nil {
		return nil, fmt.Errorf("get executor %s: %w", id, mapErr(err))
	}
	return e, nil
}

// ExecutorList lists executors ordered by group, then name.
func (s *Store) ExecutorList(ctx context.Context) ([]*store.Executor, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+executorCols+" FROM executors ORDER BY grp, name")
	if err != nil {
		return nil, fmt.Errorf("list executors: %w", err)
	}
	defer rows.Close()
	var out []*store.Executor
	for rows.Next() {
		e, err := scanExecutor(rows)
		if err != nil {
			return nil, fmt.Errorf("list executors: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list executors: %w", err)
	}
	return out, nil
}

// ExecutorSetState sets an executor's state and when it entered it. A
// missing executor is store.ErrNotFound.
func (s *Store) ExecutorSetState(ctx context.Context, id, state string, since time.Time) error {
	err := s.write(ctx, func(t *tx) error {
		n, err := t.affected("UPDATE executors SET state = ?, state_since = ? WHERE id = ?",
			state, ms(orNow(since, s.nowMS())), id)
		if err == nil && n == 0 {
			err = store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("set executor %s state %s: %w", id, state, mapErr(err))
	}
	return nil
}

// ExecutorTouch sets the last-seen time of a batch of executors in one
// transaction. Ids that are not registered are ignored. The time never
// moves backwards.
func (s *Store) ExecutorTouch(ctx context.Context, ids []string, lastSeen time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.write(ctx, func(t *tx) error {
		at := ms(orNow(lastSeen, s.nowMS()))
		for _, id := range ids {
			if _, err := t.exec("UPDATE executors SET last_seen = ? WHERE id = ? AND last_seen < ?", at, id, at); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("touch executors: %w", mapErr(err))
	}
	return nil
}
