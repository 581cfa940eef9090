#!/usr/bin/env bash
# Starts jobd serve on an embedded SQLite store under .demo/, one local
# executor and an example job that runs every 2 seconds, then shows the run
# list as it grows. Ctrl-C stops everything. DEMO_SECONDS=N stops after N
# seconds (used by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
STATE=${DEMO_STATE:-.demo}
PORT=${DEMO_PORT:-7171}
mkdir -p "$STATE"
export JOBCTL_SOCKET="$PWD/$STATE/jobd.sock"

pids=()
cleanup() {
  # The executor first, so it can deregister while jobd still listens.
  for ((i=${#pids[@]}-1; i>=0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT INT TERM

"$BIN/jobd" serve --state-dir "$STATE" --socket "$JOBCTL_SOCKET" --listen "127.0.0.1:$PORT" 2>"$STATE/jobd.log" &
pids+=($!)
for _ in $(seq 1 100); do
  "$BIN/jobctl" status >/dev/null 2>&1 && break
  sleep 0.1
done
"$BIN/jobd" executor --server "http://127.0.0.1:$PORT" --group demo --name local-1 2>"$STATE/executor.log" &
pids+=($!)

if ! "$BIN/jobctl" job get hello >/dev/null 2>&1; then
  "$BIN/jobctl" job create hello --group demo --every 2s \
    --command 'sh -c "echo hello from run $JOBD_RUN_ID scheduled at $JOBD_SCHEDULED_AT"'
fi
echo
echo "jobd is up: socket $JOBCTL_SOCKET, logs in $STATE/. Try in another shell:"
echo "  export JOBCTL_SOCKET=$JOBCTL_SOCKET"
echo "  bin/jobctl status; bin/jobctl job list; bin/jobctl run list; bin/jobctl missed list"
echo
end=$(( $(date +%s) + ${DEMO_SECONDS:-1000000000} ))
while [ "$(date +%s)" -lt "$end" ]; do
  sleep 3
  echo "--- $(date +%T) jobctl run list --limit 5"
  "$BIN/jobctl" run list --limit 5 || true
done
