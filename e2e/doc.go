// Package e2e holds jobd's end-to-end tests. They build the real jobd and
// jobctl binaries once (TestMain), start `jobd serve` and `jobd executor` as
// processes on a temporary state directory, unix socket and loopback port,
// drive them with jobctl, and check the outcome through jobctl's JSON output
// and, once jobd is stopped, through the real store.
//
// The package has no code of its own: everything is in its _test.go files.
// Run it with `go test -race ./e2e/`; `-short` skips the slowest tests (the
// crash and restart ones).
package e2e
