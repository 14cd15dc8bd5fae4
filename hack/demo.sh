#!/usr/bin/env bash
# The main job of fn on this machine, end to end, with no cluster and no Docker: build fn, start
# the local platform (a real Kubernetes control plane built from source once, ~10 minutes the
# first time), deploy the examples, invoke them over HTTP and as a CloudEvent through the gateway.
# The platform stays up afterwards (bin/fn down stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
make build >/dev/null

echo "== fn up"
bin/fn up
echo "== fn deploy examples/hello"
bin/fn deploy examples/hello
echo "== fn invoke hello"
bin/fn invoke hello
echo "== fn deploy examples/echo-event"
bin/fn deploy examples/echo-event
echo "== fn invoke echo-event --cloudevent --type demo.ping --source demo --data '{\"n\":1}'"
bin/fn invoke echo-event --cloudevent --type demo.ping --source demo --data '{"n":1}'
echo "== fn list"
bin/fn list
echo "The local platform is still up: bin/fn down stops it."
