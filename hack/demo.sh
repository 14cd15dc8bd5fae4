#!/usr/bin/env bash
# The main job of fn on this machine, end to end: build fn, serve examples/hello and
# examples/echo-event as local processes with fn run, invoke them over HTTP and as a CloudEvent,
# and stop them. (Once the local platform lands, this becomes fn up + fn deploy + fn invoke.)
set -euo pipefail
cd "$(dirname "$0")/.."
make build >/dev/null
pids=()
trap 'for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT

url=""
serve() { # serve DIR PORT: start fn run (its logs on stderr) and set url to the URL it prints
  local out; out=$(mktemp)
  bin/fn run "$1" --port "$2" >"$out" &
  pids+=($!)
  for _ in $(seq 1 600); do [ -s "$out" ] && break; sleep 0.1; done
  [ -s "$out" ] || { echo "demo: $1 did not start" >&2; exit 1; }
  url=$(cat "$out"); rm -f "$out"
}

serve examples/hello 18080; hello=$url
echo "== fn invoke --url $hello/?name=fn"
bin/fn invoke --url "$hello/?name=fn"

serve examples/echo-event 18081; echo_url=$url
echo "== fn invoke --url $echo_url --cloudevent --type demo.ping --source demo --data '{\"n\":1}'"
bin/fn invoke --url "$echo_url" --cloudevent --type demo.ping --source demo --data '{"n":1}'
