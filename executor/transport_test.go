package executor

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTransport_Skip(t *testing.T) {
	t.Parallel()
	tr := newTransport([]string{"http://a", "http://b"}, "", nil)
	tr.skip()
	require.Equal(t, 1, tr.cur)
	tr.skip()
	require.Equal(t, 0, tr.cur, "wraps around")
}
