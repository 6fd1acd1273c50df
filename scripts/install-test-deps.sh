#!/usr/bin/env bash
# Installs what the test suite needs, when it is missing: redis-server and redis-cli (Debian),
# promtool (Debian prometheus, for the alert rule tests), a
# DynamoDB-compatible server (moto_server, from PyPI moto[server]), grpcio, grpcio-tools and
# grpcio-status (PyPI, for the Python client test in tests/python) and buf (npm @bufbuild/buf).
# Safe to run again: anything already installed is left alone.
set -euo pipefail

need() { ! command -v "$1" >/dev/null 2>&1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if need redis-server; then
  echo "installing redis-server (apt)" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  # The package starts a system-wide server on 6379; the tests start their own on free ports.
  as_root service redis-server stop >/dev/null 2>&1 || true
fi

if need redis-cli || need promtool; then
  echo "installing redis-tools and prometheus (promtool) (apt)" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-tools prometheus >/dev/null
  # Only promtool is wanted; the tests never talk to a Prometheus server.
  as_root service prometheus stop >/dev/null 2>&1 || true
fi

if need moto_server; then
  echo "installing moto[server] (pip)" >&2
  python3 -m pip install --quiet 'moto[server]>=5,<6'
  hash -r
fi

# The Python client test generates its stubs with grpcio-tools' bundled protoc.
need_grpcio() { ! python3 -c 'import grpc, grpc_tools, grpc_status' >/dev/null 2>&1; }
if need_grpcio; then
  echo "installing grpcio grpcio-tools grpcio-status (pip)" >&2
  python3 -m pip install --quiet 'grpcio>=1.60' 'grpcio-tools>=1.60' 'grpcio-status>=1.60'
fi

if need buf; then
  echo "installing buf (npm)" >&2
  npm install --global --silent @bufbuild/buf@1
  hash -r
fi

for tool in redis-server redis-cli promtool moto_server buf; do
  if need "$tool"; then
    echo "error: $tool is still not on PATH after installing it" >&2
    exit 1
  fi
done
if need_grpcio; then
  echo "error: python3 still cannot import grpc, grpc_tools and grpc_status after installing them" >&2
  exit 1
fi
