// Package executor is jobd's executor agent, the program behind
// `jobd executor`, and the Go SDK for embedding one in a service.
//
// An Agent connects out to jobd over HTTP(S) (a worker machine opens no
// port): it registers in its group, then long-polls jobd; each poll is also
// the heartbeat that carries its load (the runs it holds, its free slots).
// Poll answers hand it runs and commands (kill, drain, undrain). It
// executes at most Config.Slots runs at once and reports each run's start,
// its output and its result.
//
// # Embedding
//
//	a, err := executor.New(executor.Config{
//		Servers:  []string{"https://jobd-1.internal:7070", "https://jobd-2.internal:7070"},
//		Group:    "billing",
//		Token:    token, // the group's token
//		StateDir: "/var/lib/billing/jobd", // report spool; "" keeps reports in memory
//		Logger:   logger,
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
// New validates the Config (every bad field is a *ConfigError naming it)
// and applies the defaults documented on its fields. Register every handler
// with Handle before Run: their names are announced to jobd when the agent
// registers. A job created with `jobctl job create NAME --group billing
// --handler invoice.send` then runs in this process. jobd routes by group
// and labels, so every executor of a group that gets handler jobs should
// serve their handlers: one that does not fails the run ("no handler ...
// is registered on this executor"). The examples/sdk program is a complete
// one.
//
// # Handlers
//
// A HandlerFunc gets a context and a *Run describing the run: its ID, Job,
// Attempt (from 1; retries count up), TriggerID and ScheduledAt (the
// trigger's identity), Replay (a replayed missed trigger), Params (the
// run's params, as jobd sent them; a copy the handler owns) and, in
// a sharding broadcast, ShardIndex (from 0) out of ShardTotal (0 of 1
// otherwise).
// Returning nil succeeds the run; returning an error fails it, the error's
// text becoming the run's error. A panic fails the run, and its stack goes
// to the run's log. Handlers of different runs run concurrently, each in
// its own goroutine.
//
// Logs: what a handler writes to r.Log is the run's output, stored by jobd
// and shown by `jobctl logs RUN -f`. It is batched: sent every 200ms or
// 32 KiB, whichever comes first. Writes never fail while the handler runs,
// but block while the agent's report queue is full (jobd unreachable and
// no spool, or the spool full); they fail once the handler has returned.
// Use the agent's Logger for the service's own logs.
//
// Cancellation: the handler's ctx is cancelled when the run times out
// (the job's timeout), is killed (`jobctl run kill`, an overlap policy of
// replace) or is still running when the agent's ShutdownGrace expires;
// context.Cause(ctx) says which. The handler should then return promptly:
// one that has not returned after Config.KillGrace is abandoned (its
// goroutine cannot be killed), and the run ends as timed_out or killed
// whatever the handler returns later.
//
// # Other job kinds
//
//   - command: argv is executed directly, never through a shell.
//   - script: the source is written to a file and run by its interpreter
//     (sh, bash, python3 or node).
//   - http: a request is made; a 2xx status is success. It never carries
//     the executor's token.
//
// Processes run in a process group of their own, with their combined
// stdout and stderr as the run's log. A timeout or kill sends SIGTERM to
// the whole group and SIGKILL after Config.KillGrace, so no descendant
// survives; a run's descendants still alive when it exits are stopped the
// same way. The run id, job, attempt, scheduled time, trigger id, shard and
// params reach processes only as JOBD_* environment variables (JOBD_RUN_ID,
// JOBD_JOB, JOBD_ATTEMPT, JOBD_SCHEDULED_AT, JOBD_TRIGGER_ID,
// JOBD_SHARD_INDEX, JOBD_SHARD_TOTAL, and ParamEnvName for each param),
// never interpolated into a command line. JOBD_* variables of the agent's
// own environment are not passed on. Under a container, run the agent
// behind an init that reaps orphans (docker --init): orphaned zombies of
// killed jobs are otherwise never reaped.
//
// # Reports
//
// The reports of all runs go through one ordered queue in memory, and one
// goroutine sends them in batches (POST /api/v1/executor/{id}/reports):
// whenever a batch is acknowledged, the next one holds everything queued
// meanwhile, up to 1000 reports or about 768 KiB. Every report carries a
// sequence number, from 1 in each run attempt; jobd stores each report
// once (a report sent again is acknowledged as a duplicate) and in order.
// A report jobd refuses for good (an unknown run) is dropped with a
// warning. A run's slot is free as soon as its work ends; the run itself
// is forgotten once its reports are acknowledged.
//
// # Servers, failover and the spool
//
// Config.Servers lists one or more jobd addresses serving the same
// scheduler. Every request goes to the last server that answered; when it
// cannot be reached (or answers 502, 503 or 504) the others are tried in
// order, and the first that answers becomes the one used from then on. For
// https:// servers, Config.CAFile or Config.TLSConfig says which
// certificates to trust besides the system's. The token is sent as a
// bearer token and never appears in logs or errors; jobd refusing it (401
// or 403) at registration makes Run return an error saying so.
//
// With a Config.StateDir, reports no server takes are spooled to disk: a
// batch that every server failed to store is appended to
// StateDir/spool/reports-N.jsonl and fsynced, then acknowledged to the
// queue, so jobs go on running, their slots free up and memory stays
// bounded while every jobd is down. While the spool holds reports, newer
// reports join it behind them; a background resender sends it in order,
// in batches, as soon as a server answers, and deletes the files jobd
// acknowledged; then reports go straight to jobd again. So each run's
// reports reach jobd in order, across the spool and memory. Runs whose
// reports wait in the spool hold no slot but stay listed to jobd as
// running (jobd ends a run its executor stops listing as lost) until their
// result is delivered. The spool is bounded by Config.SpoolMaxBytes (1 GiB
// by default); when it is full the agent logs an error and reports wait in
// memory again. A StateDir is used by one agent at a time.
//
// Without a StateDir, reports wait in memory, retried until jobd takes
// them; once that queue is full, jobs writing output block.
//
// # Draining and stopping
//
// A drain command from jobd (`jobctl executor drain`) makes the agent
// drain: it starts no new run (an assignment that still arrives is
// neither started nor listed to jobd, which requeues it), announces no
// free slot, and goes on polling, so heartbeats and kill commands still
// work, logging the runs left ("draining: N runs left"). Once its runs
// ended and every report is delivered (the memory queue, and the spool
// once a jobd takes it), it deregisters and Run returns nil. An undrain
// command before then cancels the drain: the agent takes runs again.
//
// When Run's context is done (SIGTERM to `jobd executor`) the agent drains
// by itself. It first asks jobd to stop routing to it (POST
// /api/v1/executor/{id}/drain with ShutdownGrace as the drain's timeout
// and on_timeout requeue; an error is only logged, since jobd may be
// down), fails the runs still waiting for a slot, and goes on polling,
// starting nothing (an undrain is ignored), while it waits up to
// Config.ShutdownGrace for running runs to finish; then it kills what is
// left, reporting those runs killed, and delivers the remaining reports.
// With a spool, it then gives jobd up to 10 seconds to take what the
// spool holds, stopping sooner when no server answers. It deregisters
// last, and only when every report was delivered: reports left in the
// spool are sent first by the next agent started on the same StateDir,
// which also lists their runs to jobd when it registers. Run returns nil
// after a stop or a drain, and an error when jobd refused the registration
// for good or the spool cannot be opened.
//
// Abort stops hard, at any time (`jobd executor` calls it on a second
// SIGTERM or SIGINT): every run is killed at once (SIGTERM to its process
// group, SIGKILL after Config.KillGrace, or as Run returns if sooner), and
// Run delivers what reports it can within about two seconds, spooling the
// rest, and returns.
package executor
