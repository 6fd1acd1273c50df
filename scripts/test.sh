#!/usr/bin/env bash
# The whole test suite: installs what it needs when missing, checks the proto contract,
# builds the sidecar binary the end-to-end tests start, and runs every test of the workspace.
# The tests start their own servers (moto_server, redis-server) on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
buf lint
cargo build --locked -p goalstore-sidecar --bins
cargo test --locked --workspace
