#!/usr/bin/env bash
# Builds (once) and caches the metrics-server binary from the pinned module in
# third_party/metrics-server (sigs.k8s.io/metrics-server v0.8.0).
#
# Prints the binary's path on stdout; everything else goes to stderr. The cache
# key is a hash of third_party/metrics-server/go.mod, go.sum, the `go version`
# output and the build flags below, so a change to any of them builds into a
# new directory. A warm call only checks for the file.
#
#   FN_METRICS_SERVER_CACHE   cache root (default: $HOME/.cache/fn/metrics-server)
#   FN_METRICS_SERVER_MODULE  the pinning module's directory
#                             (default: the repository's third_party/metrics-server)
#
# A cold build took 301 s on 2 busy cores (360 s user CPU, 1.2 GB peak RSS, with k8s.io
# v0.33.2 libraries not yet in the build cache); the static, stripped binary is 67 MB.
# A warm call takes ~0.1 s.
set -euo pipefail

MS_VERSION=v0.8.0
MS_MAJOR=0
MS_MINOR=8

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod_dir="$(cd "${FN_METRICS_SERVER_MODULE:-$here/../third_party/metrics-server}" && pwd)"

package=sigs.k8s.io/metrics-server/cmd/metrics-server

# metrics-server's Makefile stamps k8s.io/client-go/pkg/version (gitVersion,
# gitCommit, buildDate); `metrics-server --version` and the OpenAPI info
# version read it. The module proxy knows no commit, and a build date would
# make the binary differ between builds, so only the version is set. Do not stamp
# k8s.io/component-base/version: its binary version feeds the apiserver library's
# emulation-version checks, and left unset it falls back to the Kubernetes version.
pkg=k8s.io/client-go/pkg/version
ldflags="-s -w -X $pkg.gitVersion=$MS_VERSION -X $pkg.gitMajor=$MS_MAJOR -X $pkg.gitMinor=$MS_MINOR -X $pkg.gitTreeState=clean"
# Static binary, no VCS stamping, and the pinning module's go.mod is never rewritten.
build_env=(CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false")
build_flags="${build_env[*]} -trimpath -ldflags=$ldflags $package"

key="$(
	{
		cat "$mod_dir/go.mod" "$mod_dir/go.sum"
		go version
		printf '%s\n' "$build_flags"
	} | sha256sum | cut -c1-16
)"
cache="${FN_METRICS_SERVER_CACHE:-$HOME/.cache/fn/metrics-server}"
dir="$cache/$key"
bin="$dir/metrics-server"

complete() {
	[[ -f "$dir/.complete" && -x "$bin" ]]
}

# Warm path: no lock, no go invocation beyond `go version`.
if complete; then
	echo "$bin"
	exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
if ! flock -n 9; then
	echo "metrics-server: another build holds $cache/.lock, waiting..." >&2
	flock 9
fi

# Someone else may have finished while we waited.
if complete; then
	echo "$bin"
	exit 0
fi

# Holding the lock, any temporary dir is left over from a killed run.
rm -rf "$cache"/.tmp-*
tmp="$(mktemp -d "$cache/.tmp-$key-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "building metrics-server $MS_VERSION into $dir (first time only, ~5 minutes)..." >&2
start=$SECONDS
(
	cd "$mod_dir"
	exec env "${build_env[@]}" go build -trimpath -ldflags "$ldflags" -o "$tmp/metrics-server" "$package"
) 9>&- &
build_pid=$!
# On Ctrl-C or kill, stop the build too rather than leave it compiling.
trap 'kill "$build_pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
wait "$build_pid"
trap 'rm -rf "$tmp"' EXIT

if [[ ! -x "$tmp/metrics-server" ]]; then
	echo "metrics-server: build produced no binary in $tmp:" >&2
	ls -l "$tmp" >&2
	exit 1
fi

printf 'version=%s\nkey=%s\n%s\n' "$MS_VERSION" "$key" "$(go version)" >"$tmp/.complete"
chmod 755 "$tmp"
rm -rf "$dir"
mv -T "$tmp" "$dir"
trap - EXIT
echo "metrics-server: built in $((SECONDS - start))s" >&2

echo "$bin"
