// Package executor is jobd's executor agent, the program behind
// `jobd executor`, and the Go SDK for embedding one in a service.
//
// An Agent connects out to jobd over HTTP (a worker machine opens no port):
// it registers, then long-polls jobd; each poll is also the heartbeat that
// carries its load (running run ids, free slots). Poll answers hand it runs
// and commands (kill, drain). It executes at most Config.Slots runs at once
// and reports each run's start, its output (cut into log reports every
// 200ms or 32 KiB) and its result. When jobd cannot be reached the agent
// backs off and tries the next server of Config.Servers.
//
// Reports: the reports of all runs go through one ordered queue, and one
// goroutine sends them in batches (POST /api/v1/executor/{id}/reports):
// whenever a batch is acknowledged, the next one holds everything queued
// meanwhile, up to 1000 reports or about 768 KiB, so a run whose start and
// result were both queued has them sent together. Every report carries a
// sequence number, from 1 in each run attempt; a batch jobd did not store
// is sent again unchanged until it does, so jobd stores each report once
// and in order. A report jobd refuses for good (an unknown run) is dropped
// with a warning. A run is forgotten, and leaves the running list of its
// polls, once its result is acknowledged. The queue is bounded: once full,
// a job writing output blocks until jobd catches up.
//
// Job kinds:
//
//   - command: argv is executed directly, never through a shell.
//   - script: the source is written to a file and run by its interpreter
//     (sh, bash, python3 or node).
//   - http: a request is made; a 2xx status is success.
//   - handler: a HandlerFunc registered with Agent.Handle is called.
//
// Processes run in a process group of their own. A timeout or kill sends
// SIGTERM to the whole group and SIGKILL after Config.KillGrace, so no
// descendant survives; a run's descendants still alive when it exits are
// stopped the same way. The run id, job, attempt, scheduled time, trigger
// id, shard and params reach processes only as JOBD_* environment variables
// (see ParamEnvName), never interpolated into a command line. JOBD_*
// variables of the agent's own environment are not passed on. Under a
// container, run the agent behind an init that reaps orphans (docker
// --init): orphaned zombies of killed jobs are otherwise never reaped.
//
// Embedding as an SDK:
//
//	a, err := executor.New(executor.Config{
//		Servers: []string{"https://jobd.internal:7070"},
//		Group:   "billing",
//		Token:   token,
//		Logger:  logger,
//	})
//	if err != nil {
//		return err
//	}
//	a.Handle("invoice.send", func(ctx context.Context, r *executor.Run) error {
//		fmt.Fprintf(r.Log, "sending invoices for shard %d/%d\n", r.ShardIndex, r.ShardTotal)
//		return sendInvoices(ctx, r.Params["day"])
//	})
//	return a.Run(ctx) // until ctx is done, then a graceful stop
//
// Stopping: when Run's context is done the agent stops polling, waits up to
// Config.ShutdownGrace for its runs to finish, kills what is left, delivers
// the remaining reports and deregisters before Run returns.
package executor
