package executor_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/jobd/jobd/executor"
)

// An executor embedded in a service: it serves the handler jobs of its
// group until SIGINT or SIGTERM, then finishes its runs and stops.
func ExampleAgent_Handle() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	a, err := executor.New(executor.Config{
		Servers:  []string{"https://jobd-1.internal:7070", "https://jobd-2.internal:7070"},
		Group:    "reports",
		Token:    os.Getenv("JOBD_EXECUTOR_TOKEN"),
		StateDir: "/var/lib/reports/jobd", // spool reports here while jobd is down
		CAFile:   "/etc/jobd/ca.pem",
		Logger:   logger,
	})
	if err != nil {
		logger.Error("executor", "err", err)
		return
	}

	// jobctl job create nightly-report --group reports --cron '0 2 * * *' \
	//   --handler report.build --param days=7
	a.Handle("report.build", func(ctx context.Context, r *executor.Run) error {
		days, err := strconv.Atoi(r.Params["days"])
		if err != nil {
			return fmt.Errorf("param days: %w", err) // fails the run
		}
		for day := range days {
			// Each shard of a sharding broadcast builds its part (a run
			// that is not part of one is shard 0 of 1).
			if day%r.ShardTotal != r.ShardIndex {
				continue
			}
			select {
			case <-ctx.Done(): // timed out, killed, or the agent stops
				return context.Cause(ctx)
			case <-time.After(time.Second): // the work
			}
			fmt.Fprintf(r.Log, "day -%d done\n", day) // the run's log in jobd
		}
		return nil
	})

	if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		logger.Error("executor stopped", "err", err)
	}
}
