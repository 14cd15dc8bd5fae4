#!/usr/bin/env bash
# Fails when the generated files differ from what hack/update-codegen.sh produces.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
paths=(controller/client controller/apis/fn/v1alpha1/zz_generated.deepcopy.go config/crd platform/controlplane/k8ssrc/go.mod.pinned platform/controlplane/k8ssrc/go.sum.pinned platform/controlplane/k8ssrc/tools.go.pinned manifest/fn.schema.json)
for p in "${paths[@]}"; do mkdir -p "$tmp/$(dirname "$p")"; cp -a "$p" "$tmp/$p"; done
hack/update-codegen.sh
status=0
for p in "${paths[@]}"; do
  if ! diff -r "$tmp/$p" "$p" >/dev/null; then
    echo "verify: $p is out of date: run make generate and commit the result" >&2
    diff -r "$tmp/$p" "$p" | head -20 >&2 || true
    status=1
  fi
done
exit $status
