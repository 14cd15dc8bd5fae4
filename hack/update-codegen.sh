#!/usr/bin/env bash
# Regenerates every generated file: the controller's deepcopy, clientset, listers, informers,
# knative injection and genreconciler, the CRD's OpenAPI schema, fn.yaml's JSON Schema, and the
# copies of the Kubernetes build inputs fn embeds. `make generate` runs it;
# `make verify` runs it and fails on any difference. Never edit the generated files by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

MOD=fnkit.dev/fn
APIS_DIR=controller/apis/fn/v1alpha1
APIS=$MOD/$APIS_DIR
CLIENT=$MOD/controller/client
HEADER=hack/boilerplate.go.txt
export GOFLAGS=-mod=mod GOWORK=off

step() { echo "codegen: $*" >&2; }

step "deepcopy"
go tool deepcopy-gen --go-header-file "$HEADER" --output-file zz_generated.deepcopy.go "./$APIS_DIR"

rm -rf controller/client
step "clientset"
go tool client-gen --go-header-file "$HEADER" --clientset-name versioned --input-base "" --input "$APIS" \
  --output-pkg "$CLIENT/clientset" --output-dir controller/client/clientset
step "listers"
go tool lister-gen --go-header-file "$HEADER" --output-pkg "$CLIENT/listers" --output-dir controller/client/listers "$APIS"
step "informers"
go tool informer-gen --go-header-file "$HEADER" --versioned-clientset-package "$CLIENT/clientset/versioned" \
  --listers-package "$CLIENT/listers" --output-pkg "$CLIENT/informers" --output-dir controller/client/informers "$APIS"
step "knative injection and genreconciler"
go tool injection-gen --go-header-file "$HEADER" \
  --versioned-clientset-package "$CLIENT/clientset/versioned" \
  --external-versions-informers-package "$CLIENT/informers/externalversions" \
  --listers-package "$CLIENT/listers" \
  --output-package "$CLIENT/injection" --output-dir controller/client/injection --input-dirs "$APIS"

step "CRD schema"
go tool controller-gen crd:crdVersions=v1 paths="./$APIS_DIR/..." output:crd:artifacts:config=config/crd
gofmt -w controller/client "$APIS_DIR"

step "fn.yaml JSON Schema"
go run ./hack/manifestschema

step "Kubernetes build inputs embedded in fn"
# fn builds the control plane binaries with k8s-binaries.sh and these copies of the pinning
# module when it runs outside a clone of this repository (platform/controlplane/bindir.go); a
# nested go.mod would make a module, hence the .pinned names.
src=platform/controlplane/k8ssrc
for f in go.mod go.sum tools.go; do cp "third_party/k8s/$f" "$src/$f.pinned"; done
