#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server from Debian's packages for the tests and prints its URL.
# Installs the server when it is missing (needs root, as on CI). Idempotent: reuses a running one.
set -euo pipefail
PORT="${HANUL_TEST_PG_PORT:-55432}"
ROOT="${HANUL_TEST_PG_DIR:-/tmp/hanul-test-postgres}"
URL="postgresql+asyncpg://hanul:hanul@127.0.0.1:${PORT}/hanul"

bin_dir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

if [ -z "$(bin_dir)" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi
BIN="$(bin_dir)"
if ! id postgres >/dev/null 2>&1; then useradd --system --no-create-home postgres; fi
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if ! as_pg "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
    rm -rf "$ROOT"; mkdir -p "$ROOT"; chown postgres "$ROOT" 2>/dev/null || true
    as_pg "$BIN/initdb" -D "$ROOT/data" -U postgres -A trust >&2
    as_pg "$BIN/pg_ctl" -D "$ROOT/data" -l "$ROOT/log" -w \
        -o "-p $PORT -k $ROOT -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" start >&2
    as_pg "$BIN/psql" -q -h 127.0.0.1 -p "$PORT" -U postgres -c "CREATE ROLE hanul LOGIN SUPERUSER PASSWORD 'hanul'" >&2
    as_pg "$BIN/psql" -q -h 127.0.0.1 -p "$PORT" -U postgres -c "CREATE DATABASE hanul OWNER hanul" >&2
fi
echo "$URL"
