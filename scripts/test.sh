#!/usr/bin/env bash
# The whole test suite: installs what it needs when missing, checks the proto contract,
# checks and unit-tests the alert and recording rules, lints the SDK's minimal feature set,
# builds the binaries the end-to-end tests start
# (goalstore-sidecar, goalctl, the Lambda handlers), runs the README's first command as a smoke
# test (scripts/smoke-readme.sh), and runs every test of the workspace.
# The tests start their own servers (moto_server, redis-server) on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
buf lint
# The contract never breaks silently: compare it with the previous commit's.
if git rev-parse -q --verify HEAD~1 >/dev/null && git cat-file -e HEAD~1:buf.yaml 2>/dev/null; then
  buf breaking --against '.git#ref=HEAD~1'
fi
promtool check rules deploy/prometheus/rules.yml deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/rules_test.yml deploy/prometheus/alerts_test.yml
# The SDK's minimal feature set (the in-process store, without the gRPC client or the Redis
# tier) lints clean and passes its unit tests; the full set is the workspace's, built below.
cargo clippy --locked -p goalstore --no-default-features --all-targets -- -D warnings
cargo test --locked -p goalstore --no-default-features --lib
cargo build --locked -p goalstore-sidecar -p goalstore-lambda --bins
scripts/smoke-readme.sh
cargo test --locked --workspace
