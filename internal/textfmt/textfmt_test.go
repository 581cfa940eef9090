package textfmt

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		350*time.Millisecond + 400*time.Microsecond:  "350ms",
		12340 * time.Millisecond:                     "12.3s",
		4*time.Minute + 5400*time.Millisecond:        "4m5s",
		3*time.Hour + 2*time.Minute + 10*time.Second: "3h2m",
		52 * time.Hour: "2d4h",
	} {
		require.Equal(t, want, Duration(d), "%v", d)
	}
}

func TestOrDashAndMap(t *testing.T) {
	t.Parallel()
	require.Equal(t, "-", OrDash(""))
	require.Equal(t, "x", OrDash("x"))
	require.Equal(t, "-", Map(nil))
	require.Equal(t, "a=1,b=2", Map(map[string]string{"b": "2", "a": "1"}))
}
