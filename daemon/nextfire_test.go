package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

func TestScheduler_NextFireIsEarliestArmed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := tm(t, "2026-05-04T10:00:00.500Z")
	s, b := setup(t, start)
	j, err := s.CreateJob(ctx, api.JobSpec{Name: "tick", Group: "g", Every: dur(2 * time.Second), Command: []string{"x"}})
	require.NoError(t, err)
	b.step(t, s, start)

	armed := s.NextArmed([]int64{j.row.ID, 424242})
	require.Len(t, armed, 1, "a job without armed triggers is absent")
	row, err := b.st.JobGetByID(ctx, j.row.ID)
	require.NoError(t, err)
	got, _ := compileJob(row)
	next := nextFire(got, armed)
	require.True(t, next.After(start), "next fire %v is after now", next)
	require.LessOrEqual(t, next.Sub(start), 2*time.Second, "the next fire is the first armed trigger, not the cursor past the look-ahead (%v)", row.NextFireAt)
	require.True(t, next.Before(row.NextFireAt), "the cursor is past the armed triggers")

	// Once fired, the next armed one takes its place.
	b.step(t, s, next)
	after := nextFire(got, s.NextArmed([]int64{j.row.ID}))
	require.Equal(t, next.Add(2*time.Second), after)
}
