package completions_test

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/completions"
	"github.com/jobd/jobd/jobctl"
)

// TestGenerated checks the committed scripts match what jobctl generates;
// regenerate them with `go generate ./completions/`.
func TestGenerated(t *testing.T) {
	t.Parallel()
	for _, shell := range completions.Shells {
		t.Run(shell, func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			code := jobctl.Main(t.Context(), []string{"completion", shell}, strings.NewReader(""), &out, &errOut)
			require.Equal(t, 0, code, errOut.String())
			want, err := os.ReadFile("jobctl." + shell)
			require.NoError(t, err)
			require.Equal(t, string(want), out.String(), "completions/jobctl.%s is stale: run go generate ./completions/", shell)
		})
	}
}
