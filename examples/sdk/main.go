// Command sdk is a small service embedding a jobd executor: it serves the
// handler jobs "hello" and "sleep" of its group until SIGINT or SIGTERM,
// then finishes its runs and stops.
//
//	go run ./examples/sdk --server http://127.0.0.1:7070 --group demo
//	jobctl job create hi --group demo --manual --handler hello --param who=world
//	jobctl job create nap --group demo --manual --handler sleep --param seconds=30 --timeout 10s
//	jobctl job trigger hi
//	jobctl logs RUN_ID
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jobd/jobd/executor"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the example until ctx is done and returns the exit code: 0 after
// a clean stop, 1 when the executor failed, 2 for a bad command line.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	fs := flag.NewFlagSet("sdk", flag.ContinueOnError)
	fs.SetOutput(stderr)
	servers := fs.String("server", "http://127.0.0.1:7070", "jobd URL(s), comma-separated, tried in order")
	group := fs.String("group", "sdk-example", "executor group to join")
	token := fs.String("token", "", "group token (default $JOBD_EXECUTOR_TOKEN)")
	stateDir := fs.String("state-dir", "", "directory to spool reports to while jobd is down (default: none, memory only)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sdk: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *token == "" {
		*token = getenv("JOBD_EXECUTOR_TOKEN")
	}
	var urls []string
	for _, s := range strings.Split(*servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			urls = append(urls, s)
		}
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	a, err := executor.New(executor.Config{
		Servers:  urls,
		Group:    *group,
		Token:    *token,
		StateDir: *stateDir,
		Logger:   logger,
	})
	if err != nil {
		fmt.Fprintf(stderr, "sdk: %v\n", err)
		return 2
	}
	a.Handle("hello", hello)
	a.Handle("sleep", sleep)
	if err := a.Run(ctx); err != nil {
		logger.Error("executor stopped", "err", err)
		return 1
	}
	return 0
}

// hello writes a greeting and the run's params to the run's log.
func hello(ctx context.Context, r *executor.Run) error {
	fmt.Fprintf(r.Log, "hello from run %s of job %s (attempt %d, shard %d of %d)\n",
		r.ID, r.Job, r.Attempt, r.ShardIndex, r.ShardTotal)
	for _, name := range slices.Sorted(maps.Keys(r.Params)) {
		if ctx.Err() != nil {
			// Timed out or killed: stop and say why.
			return context.Cause(ctx)
		}
		fmt.Fprintf(r.Log, "param %s=%s\n", name, r.Params[name])
	}
	return nil
}

// sleep sleeps for the run's param "seconds", or until the run is stopped.
func sleep(ctx context.Context, r *executor.Run) error {
	secs, err := strconv.ParseFloat(r.Params["seconds"], 64)
	if err != nil || secs < 0 || math.IsInf(secs, 0) || math.IsNaN(secs) || secs > math.MaxInt64/float64(time.Second) {
		return fmt.Errorf("param seconds %q: want a number of seconds, 0 or more", r.Params["seconds"])
	}
	d := time.Duration(secs * float64(time.Second))
	fmt.Fprintf(r.Log, "sleeping for %s\n", d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		fmt.Fprintln(r.Log, "awake")
		return nil
	case <-ctx.Done():
		cause := context.Cause(ctx)
		fmt.Fprintf(r.Log, "woken early: %v\n", cause)
		return fmt.Errorf("sleep interrupted: %w", cause)
	}
}
