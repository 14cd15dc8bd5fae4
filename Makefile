# fn's build, test and benchmark entry points. `make test` is the test command CI runs.
GO      ?= go
MODULES := . runtime examples/hello examples/echo-event examples/typed
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X fnkit.dev/fn/builder.version=$(VERSION)

.PHONY: build demo check test test-short lint bench soak clean generate verify k8s fuzz

# The fuzz targets, as PACKAGE:TARGET (run from the module holding the package).
FUZZ_MAIN    := ./gateway:FuzzRequestHead ./gateway:FuzzFunctionResponse ./platform/agent:FuzzUnpack ./gitbuild:FuzzHooks ./builder:FuzzDetect
FUZZ_RUNTIME := .:FuzzCloudEventDecode .:FuzzTypedDecode .:FuzzConfig
FUZZTIME     ?= 3s

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

## demo: fn's main job on this machine: serve the examples with fn run and invoke them.
demo:
	hack/demo.sh

## generate: regenerate every generated file (clients, injection, deepcopy, CRD schema).
generate:
	hack/update-codegen.sh

## verify: regenerate and fail if anything differs from what is committed.
verify:
	hack/verify-codegen.sh

## k8s: build (once, cached under ~/.cache/fn/k8s and ~/.cache/fn/metrics-server) the Kubernetes
## binaries integration tests use, and metrics-server.
k8s:
	hack/k8s-binaries.sh
	hack/metrics-server.sh

## check: what CI runs (.ci/run): the cached Kubernetes and metrics-server binaries, generated
## code, every test.
check:
	FN_K8S_BIN="$$(hack/k8s-binaries.sh)" FN_METRICS_SERVER="$$(hack/metrics-server.sh)" $(MAKE) verify test

## test: lint, then every module's tests, including the end-to-end ones that build and run
## functions, then each fuzz target for FUZZTIME (its seeds run with the tests). The end-to-end
## package runs on one platform for all its tests, past go test's default of 10 minutes.
test: lint
	cd runtime && $(GO) test -race -count=1 ./...
	$(GO) test -count=1 -timeout 30m ./...
	for m in examples/*/; do (cd $$m && $(GO) test -count=1 ./...) || exit 1; done
	$(MAKE) fuzz

## fuzz: each fuzz target for FUZZTIME (3s; make fuzz FUZZTIME=10m for a long run). New
## failing inputs land in the package's testdata/fuzz, to be committed with their fix.
fuzz:
	for t in $(FUZZ_MAIN); do GO=$(GO) hack/fuzz.sh . "$${t%%:*}" "$${t#*:}" $(FUZZTIME) || exit 1; done
	for t in $(FUZZ_RUNTIME); do GO=$(GO) hack/fuzz.sh runtime "$${t%%:*}" "$${t#*:}" $(FUZZTIME) || exit 1; done

## test-short: the fast unit tests only.
test-short:
	for m in $(MODULES); do (cd $$m && $(GO) test -short ./...) || exit 1; done

lint:
	@out=$$(gofmt -l $(MODULES) templates test/functions); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	for m in $(MODULES); do (cd $$m && $(GO) vet ./...) || exit 1; done

## bench: the benchmarks of bench/, each against a baseline run side by side.
bench: build
	$(GO) run ./bench/build
	$(GO) run ./bench/runtime
	$(GO) run ./bench/controller
	$(GO) run ./bench/gateway
	$(GO) run ./bench/platform
	$(GO) run ./bench/autoscale
	$(GO) run ./bench/events
	$(GO) run ./bench/rollout
	$(GO) run ./bench/gitpush
	$(GO) run ./bench/install

## soak: the local platform for SOAKTIME (10m) under bounded load, redeploys and scale to zero,
## its processes sampled every 10 s: bench/results/soak.md. Outside the test command.
SOAKTIME ?= 10m
soak: build
	$(GO) run ./bench/soak -duration $(SOAKTIME)

clean:
	rm -rf bin/
