#!/usr/bin/env bash
# The README's first command, run as a newcomer runs it: the sidecar through `cargo run`, so the
# same manifest resolution (which binary `-p goalstore-sidecar` means) is exercised. The command
# is read from the README itself — the first line of its first ```sh block — so the README and
# this check cannot drift apart. `--release` is dropped (CI builds the debug profile); nothing
# else is changed.
#
# Then, against that process: gRPC health answers SERVING, goalctl creates a goal, reads it back
# and logs an activity to it, /metrics answers with the store's series, and SIGTERM ends it with
# exit status 0 within the shutdown grace period. Any failure names the README command.
set -euo pipefail
cd "$(dirname "$0")/.."

readme_command=$(awk '
  /^```sh/ { inside = 1; next }
  /^```/   { if (inside) exit }
  inside && NF && $1 !~ /^#/ { print; exit }
' README.md)

fail() {
  echo "error: the README's first command \`$readme_command\` $*" >&2
  if [ -n "${log:-}" ] && [ -s "$log" ]; then
    echo "--- its output (last 40 lines) ---" >&2
    tail -n 40 "$log" >&2
  fi
  exit 1
}

case "$readme_command" in
  "cargo run "*) ;;
  *) fail "is not a \`cargo run\` of the sidecar (read from README.md's first sh block)" ;;
esac
# shellcheck disable=SC2206 # the command is split into words as a shell would
command=(${readme_command/ --release/})

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
grpc_port=$(free_port)
metrics_port=$(free_port)
grace_secs=10
log=$(mktemp)
work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$log" "$work"
}
trap cleanup EXIT

# goalctl first, so building it does not wait on (or delay) the sidecar's own `cargo run`.
cargo build --quiet --locked -p goalstore-sidecar --bin goalctl
target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
goalctl=("$target_dir/debug/goalctl" --endpoint "http://127.0.0.1:$grpc_port" --timeout 10s)

echo "smoke: ${command[*]} (GOALSTORE_LISTEN=127.0.0.1:$grpc_port)" >&2
# cargo run execs the binary in place on Unix, so $pid is the sidecar itself once it runs.
GOALSTORE_LISTEN="127.0.0.1:$grpc_port" \
  GOALSTORE_METRICS_LISTEN="127.0.0.1:$metrics_port" \
  GOALSTORE_SHUTDOWN_GRACE="${grace_secs}s" \
  GOALSTORE_LOG_FORMAT=json \
  "${command[@]}" >"$log" 2>&1 &
pid=$!

# Readiness poll (the process offers nothing to await). Its start may include a build.
deadline=$((SECONDS + 900))
until "${goalctl[@]}" health >/dev/null 2>&1; do
  kill -0 "$pid" 2>/dev/null || { wait "$pid" && status=0 || status=$?; fail "exited with status $status before serving"; }
  [ "$SECONDS" -lt "$deadline" ] || fail "did not answer health SERVING on 127.0.0.1:$grpc_port within 900 s"
  sleep 0.2
done

user="smoke-user"
goal=$("${goalctl[@]}" --json create --user "$user" --title "Smoke test" --pattern milestone \
  --target-value 10 --unit pages --target-date 2099-01-01T00:00:00Z |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["goal_id"])') ||
  fail "served, but goalctl create failed"
title=$("${goalctl[@]}" --json get --user "$user" --goal "$goal" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["title"])') ||
  fail "served, but goalctl get failed"
[ "$title" = "Smoke test" ] || fail "served goal $goal back with title \`$title\`"
total=$("${goalctl[@]}" --json log --user "$user" --goal "$goal" --value 4 --unit pages |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["progress"]["total_accumulated"])') ||
  fail "served, but goalctl log failed"
[ "$total" = "4.0" ] || fail "logged 4 pages, but the progress total is \`$total\`"

metrics=$(curl --silent --show-error --max-time 10 "http://127.0.0.1:$metrics_port/metrics") ||
  fail "served gRPC, but /metrics on 127.0.0.1:$metrics_port did not answer"
grep -q '^goalstore_operations_total{.*op="create_goal".*outcome="ok".*} 1$' <<<"$metrics" ||
  grep -q '^goalstore_operations_total{.*outcome="ok".*op="create_goal".*} 1$' <<<"$metrics" ||
  fail "answered /metrics without counting the goal it created"

kill -TERM "$pid"
deadline=$((SECONDS + grace_secs + 2))
while kill -0 "$pid" 2>/dev/null; do
  [ "$SECONDS" -lt "$deadline" ] || fail "was still running ${grace_secs} s (its shutdown grace) after SIGTERM"
  sleep 0.1
done
wait "$pid" && status=0 || status=$?
pid=""
[ "$status" -eq 0 ] || fail "exited with status $status after SIGTERM (expected 0)"
echo "smoke: \`$readme_command\` served health, create, get, log and /metrics, and exited 0 on SIGTERM" >&2
