package jobctl

import "testing"

// FuzzParseJobsFile: reading an apply file never panics, and what it
// accepts has a name for every job.
func FuzzParseJobsFile(f *testing.F) {
	for _, seed := range []string{
		"jobs:\n  - name: a\n    cron: '* * * * *'\n    command: [true]\n",
		"- name: b\n  every: 1m\n  command: [x]\n",
		"jobs: []\n",
		"jobs:\n  - name: c\n    unknown: 1\n",
		"not: [yaml",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		specs, err := parseJobsFile("fuzz.yaml", data)
		if err != nil {
			return
		}
		for i, s := range specs {
			if s.Name == "" {
				t.Fatalf("job %d accepted without a name", i)
			}
		}
	})
}
