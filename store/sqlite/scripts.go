package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jobd/jobd/store"
)

// ScriptSave stores source as the newest version of the job's script,
// unless it equals the newest already, and keeps the newest
// store.ScriptVersionsKept. It returns the current version.
func (s *Store) ScriptSave(ctx context.Context, jobID int64, source string, at time.Time) (int, error) {
	sum := sha256.Sum256([]byte(source))
	hash := hex.EncodeToString(sum[:])
	var version int
	err := s.write(ctx, func(t *tx) error {
		var last int
		var lastHash string
		row, err := t.queryRow("SELECT version, sha256 FROM scripts WHERE job_id = ? ORDER BY version DESC LIMIT 1", jobID)
		if err != nil {
			return err
		}
		if err := row.Scan(&last, &lastHash); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if lastHash == hash {
			version = last
			return nil
		}
		version = last + 1
		if _, err := t.exec("INSERT INTO scripts (job_id, version, source, sha256, created_at) VALUES (?, ?, ?, ?, ?)",
			jobID, version, source, hash, ms(orNow(at, s.nowMS()))); err != nil {
			if isForeignKey(err) {
				return fmt.Errorf("job %d: %w", jobID, store.ErrNotFound)
			}
			return err
		}
		_, err = t.exec("DELETE FROM scripts WHERE job_id = ? AND version <= ?", jobID, version-store.ScriptVersionsKept)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("save script of job %d: %w", jobID, mapErr(err))
	}
	return version, nil
}

// ScriptList lists the kept versions of a job's script, newest first,
// without their source.
func (s *Store) ScriptList(ctx context.Context, jobID int64) ([]*store.Script, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT version, sha256, length(CAST(source AS BLOB)), created_at FROM scripts WHERE job_id = ? ORDER BY version DESC", jobID)
	if err != nil {
		return nil, fmt.Errorf("list scripts of job %d: %w", jobID, err)
	}
	defer rows.Close()
	var out []*store.Script
	for rows.Next() {
		sc := &store.Script{JobID: jobID}
		var created sql.NullInt64
		if err := rows.Scan(&sc.Version, &sc.SHA256, &sc.Size, &created); err != nil {
			return nil, fmt.Errorf("list scripts of job %d: %w", jobID, err)
		}
		sc.CreatedAt = fromMS(created)
		out = append(out, sc)
	}
	return out, rows.Err()
}

// ScriptGet returns one version of a job's script, source included.
func (s *Store) ScriptGet(ctx context.Context, jobID int64, version int) (*store.Script, error) {
	sc := &store.Script{JobID: jobID, Version: version}
	var created sql.NullInt64
	err := s.r.QueryRowContext(ctx, "SELECT source, sha256, length(CAST(source AS BLOB)), created_at FROM scripts WHERE job_id = ? AND version = ?",
		jobID, version).Scan(&sc.Source, &sc.SHA256, &sc.Size, &created)
	if err != nil {
		return nil, fmt.Errorf("get script %d of job %d: %w", version, jobID, mapErr(err))
	}
	sc.CreatedAt = fromMS(created)
	return sc, nil
}
