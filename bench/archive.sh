#!/usr/bin/env bash
# Archiving on against archiving off, measured in the same run with
# `chorus-bench messages`: 1000 pairs at fixed total rates, server pinned to
# core 0 and the generator to core 1, plaintext, SASL PLAIN.
#
#   cargo build --release -p chorus-server -p chorus-bench
#   bench/archive.sh fresh 4000 3      # a new server per run, 3 rounds
#   bench/archive.sh sweep 2000 4000 8000   # one warmed server per setting
#
# SQLite (the default) unless CHORUS_STORAGE_URL names a PostgreSQL
# database, which is emptied before every server start (its `public` schema
# is dropped: point it at a throwaway database, as .ci/postgres.sh makes).
# Pin the PostgreSQL server to core 0 too (`taskset -a -p -c 0 <pid>`) so
# that the server and its database share the server's core.
#
# Every server binds to loopback and is stopped by this script.
set -u
here=$(cd "$(dirname "$0")" && pwd)
BIN=${CHORUS_BIN:-$here/../target/release/chorus}
BENCH=${CHORUS_BENCH_BIN:-$here/../target/release/chorus-bench}
TPL=$here/peers/chorus.toml
mode=${1:-fresh}; shift || true

start() { # $1 = mam default_pref, $2 = port; sets $dir and $pid
  dir=$(mktemp -d "${TMPDIR:-/tmp}/chorus-archive-bench-XXXX")
  sed -e "s|{DIR}|$dir|g" -e "s|{PORT}|$2|g" \
      -e "s|{MAM}|$1|" "$TPL" >"$dir/chorus.toml"
  if [ -n "${CHORUS_STORAGE_URL:-}" ]; then
    psql -q -v ON_ERROR_STOP=1 "$CHORUS_STORAGE_URL" -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public' >/dev/null 2>&1
    printf '\n[storage]\nurl = "%s"\n' "$CHORUS_STORAGE_URL" >>"$dir/chorus.toml"
  fi
  taskset -c 0 "$BIN" --config "$dir/chorus.toml" >"$dir/log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return; sleep 0.1; done
  echo "server did not start, see $dir/log" >&2; kill "$pid"; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null; rm -rf "$dir"; }
run() { # $1 = mam, $2 = port, $3 = rate, $4 = seconds
  taskset -c 1 "$BENCH" messages --addr "127.0.0.1:$2" --register --pairs 1000 \
      --secs "$4" --rate "$3" 2>/dev/null | grep '^{' | tail -1 | python3 -c '
import json, sys
d = json.load(sys.stdin)
print("mam=%s rate=%s delivered/s %.0f p50 %s ms p99 %s ms lost %s" % (sys.argv[1], sys.argv[2],
      d["delivered_per_sec"], d["latency_p50_ms"], d["latency_p99_ms"], d["lost"]))' "$1" "$3"
}

case $mode in
  fresh)
    rate=${1:-4000}; rounds=${2:-1}
    for _ in $(seq "$rounds"); do
      for mam in never always; do start $mam 15281; run $mam 15281 "$rate" 10; stop; done
    done ;;
  sweep)
    [ $# -gt 0 ] || set -- 2000 4000 6000 8000
    for mam in never always; do
      start $mam 15301
      run $mam 15301 2000 5 >/dev/null # warm-up: accounts, caches, page cache
      for rate in "$@"; do run $mam 15301 "$rate" 10; done
      stop
    done ;;
  *) echo "usage: $0 fresh [rate] [rounds] | sweep [rate...]" >&2; exit 2 ;;
esac
