#!/usr/bin/env bash
# Builds (once) and caches the Kubernetes control-plane binaries and prints their directory
# (make k8s). The script lives in platform/controlplane/k8ssrc, where fn embeds it to build them
# outside a clone of this repository too.
exec "$(dirname "${BASH_SOURCE[0]}")/../platform/controlplane/k8ssrc/k8s-binaries.sh" "$@"
