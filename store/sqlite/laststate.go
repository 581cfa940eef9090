package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// RunLastStates returns the state of the newest run of each named job that
// has runs, in one read transaction (one indexed lookup per job).
func (s *Store) RunLastStates(ctx context.Context, jobNames []string) (map[string]string, error) {
	out := make(map[string]string, len(jobNames))
	if len(jobNames) == 0 {
		return out, nil
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("last run states: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only; nothing to undo
	stmt, err := tx.PrepareContext(ctx, "SELECT state FROM runs WHERE job_name = ? ORDER BY id DESC LIMIT 1")
	if err != nil {
		return nil, fmt.Errorf("last run states: %w", err)
	}
	defer stmt.Close()
	for _, name := range jobNames {
		var state string
		err := stmt.QueryRowContext(ctx, name).Scan(&state)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			continue
		case err != nil:
			return nil, fmt.Errorf("last run state of %s: %w", name, err)
		}
		out[name] = state
	}
	return out, nil
}
