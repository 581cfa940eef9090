// Package tui is jobctl's dashboard, a Bubble Tea program: jobd's health,
// executors, jobs, runs, the logs of a run and missed triggers, live from
// jobd's event stream.
//
// One root Model implements tea.Model. It holds one view per screen
// (overview.go, executors.go, jobs.go, runs.go, logs.go, missed.go), each a
// Component sharing a Common (styles, keys, size, clock). Every request to
// jobd runs in a tea.Cmd. The event stream (GET /api/v1/events) is read by
// one goroutine into a channel, and a "wait for the next events" command,
// armed again after each batch, brings the events to Update in batches;
// when the stream breaks the model says jobd is unreachable and reconnects
// with backoff, which starts over only once a stream stayed up. The output
// of a run is streamed only while the Logs view shows it.
//
// Events are applied cheaply: a run event changes the state of a row shown
// in place, an executor event replaces the executor. What an event cannot
// tell (a new run, a job's next fire) marks the view dirty, and the page
// shown is loaded again from the API at most a few times a second, however
// many events arrive. Lists are paged by jobd (jobs by name, runs newest
// first), so the dashboard costs the same with 10 jobs or 10,000 and with
// 100,000 runs.
//
// Keys follow what operators know from k9s and lazygit (keys.go): ":" to
// switch view by name, "/" to filter, "?" for help, j/k, enter to drill in,
// esc to go back, q to quit. Actions (drain and undrain an executor,
// trigger, pause and resume a job, kill a run, replay missed triggers) ask
// for a confirmation that names what they apply to and how many; read-only
// mode removes them. Colour never carries meaning alone, and Run turns it
// off for NO_COLOR.
package tui
