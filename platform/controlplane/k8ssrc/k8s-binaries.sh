#!/usr/bin/env bash
# Builds (once) and caches real Kubernetes control-plane binaries from the
# pinned module in third_party/k8s: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and kubectl.
#
# Prints the directory that holds them on stdout; everything else goes to
# stderr. The cache key is a hash of third_party/k8s/go.mod, go.sum, the
# `go version` output and the build flags below, so a change to any of them
# builds into a new directory. A warm call only checks for the files.
#
#   FN_K8S_CACHE   cache root (default: $HOME/.cache/fn/k8s)
#   FN_K8S_MODULE  the pinning module's directory (default: the repository's third_party/k8s)
#
# A cold build takes ~10 minutes on 2 cores and ~3 GB of memory, and fills
# ~4 GB of Go build cache; the binaries together are ~330 MB.
set -euo pipefail

K8S_VERSION=v1.37.2
K8S_MAJOR=1
K8S_MINOR=37

# The module pinning the versions: the repository's third_party/k8s, or FN_K8S_MODULE (an fn
# outside a clone of the repository extracts this script and that module's files, which it
# embeds, and points here).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod_dir="$(cd "${FN_K8S_MODULE:-$here/../../../third_party/k8s}" && pwd)"

binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)
packages=(
	go.etcd.io/etcd/server/v3
	k8s.io/kubernetes/cmd/kube-apiserver
	k8s.io/kubernetes/cmd/kube-controller-manager
	k8s.io/kubernetes/cmd/kube-scheduler
	k8s.io/kubernetes/cmd/kubectl
)

ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$K8S_VERSION"
	ldflags+=" -X $pkg.gitMajor=$K8S_MAJOR"
	ldflags+=" -X $pkg.gitMinor=$K8S_MINOR"
	ldflags+=" -X $pkg.gitTreeState=clean"
done
# Static binaries, no VCS stamping (the repo may be a fresh clone owned by
# another user), module graph may be completed from go.sum.
build_env=(CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false")
build_flags="${build_env[*]} -trimpath -ldflags=$ldflags ${packages[*]}"

complete() {
	local d="$1" b
	[[ -f "$d/.complete" ]] || return 1
	for b in "${binaries[@]}"; do
		[[ -x "$d/$b" ]] || return 1
	done
}

key="$(
	{
		cat "$mod_dir/go.mod" "$mod_dir/go.sum"
		go version
		printf '%s\n' "$build_flags"
	} | sha256sum | cut -c1-16
)"
cache="${FN_K8S_CACHE:-$HOME/.cache/fn/k8s}"
dir="$cache/$key"

# Warm path: no lock, no go invocation beyond `go version`.
if complete "$dir"; then
	echo "$dir"
	exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
if ! flock -n 9; then
	echo "k8s-binaries: another build holds $cache/.lock, waiting..." >&2
	flock 9
fi

# Someone else may have finished while we waited.
if complete "$dir"; then
	echo "$dir"
	exit 0
fi

# Holding the lock, any temporary dir is left over from a killed run.
rm -rf "$cache"/.tmp-*
tmp="$(mktemp -d "$cache/.tmp-$key-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "building Kubernetes $K8S_VERSION control plane binaries into $dir (first time only, ~10 minutes)..." >&2
start=$SECONDS
(
	cd "$mod_dir"
	exec env "${build_env[@]}" go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${packages[@]}"
) 9>&- &
build_pid=$!
# On Ctrl-C or kill, stop the build too rather than leave it compiling.
trap 'kill "$build_pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
wait "$build_pid"
trap 'rm -rf "$tmp"' EXIT

# The etcd main package is the module root go.etcd.io/etcd/server/v3; go
# names a binary after the last path element that is not a /vN suffix
# ("server"), older toolchains after "v3".
for name in server v3; do
	if [[ -f "$tmp/$name" && ! -e "$tmp/etcd" ]]; then
		mv "$tmp/$name" "$tmp/etcd"
	fi
done
for b in "${binaries[@]}"; do
	if [[ ! -x "$tmp/$b" ]]; then
		echo "k8s-binaries: build produced no $b in $tmp:" >&2
		ls -l "$tmp" >&2
		exit 1
	fi
done

printf 'version=%s\nkey=%s\n%s\n' "$K8S_VERSION" "$key" "$(go version)" >"$tmp/.complete"
chmod 755 "$tmp"
# Only a complete directory is ever renamed into place; an incomplete one
# left by an older interrupted run (not possible via this script) is replaced.
rm -rf "$dir"
mv -T "$tmp" "$dir"
trap - EXIT
echo "k8s-binaries: built in $((SECONDS - start))s" >&2

others=()
for d in "$cache"/*/; do
	d="${d%/}"
	[[ "$d" == "$dir" ]] && continue
	[[ -f "$d/.complete" ]] && others+=("$d")
done
if ((${#others[@]} > 0)); then
	echo "k8s-binaries: older builds are kept in $cache (remove by hand if unused):" >&2
	du -sh "${others[@]}" >&2 || true
fi

echo "$dir"
