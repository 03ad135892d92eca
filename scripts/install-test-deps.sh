#!/usr/bin/env bash
# Installs what the end-to-end tests (test/e2e) drive: Debian's distribution 2.8 registry,
# skopeo and podman. Idempotent: when everything is there it only says so and exits 0.
#
# podman only pulls and pushes in the tests (never runs a container), as root with vfs storage, so
# it needs none of fuse-overlayfs, slirp4netns, netavark or uidmap (subuid maps are for rootless).
# Its hard dependencies (conmon, crun|runc, containers-common with policy.json) come with it; they
# are checked below too, because libpod refuses to start without an OCI runtime even to pull.
set -euo pipefail

packages=(docker-registry skopeo podman)

missing=()
for bin in docker-registry skopeo podman conmon; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
done
if ! command -v crun >/dev/null 2>&1 && ! command -v runc >/dev/null 2>&1; then
  missing+=("crun|runc")
fi
[ -f /etc/containers/policy.json ] || missing+=("/etc/containers/policy.json")

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-test-deps: docker-registry, skopeo and podman are present"
  exit 0
fi

echo "install-test-deps: missing ${missing[*]}"
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-deps: need root and apt-get to install them." >&2
  echo "  Install the Debian packages yourself: ${packages[*]}" >&2
  echo "  e.g. sudo apt-get install -y --no-install-recommends ${packages[*]}" >&2
  exit 1
fi

echo "install-test-deps: installing Debian packages: ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

still=()
for bin in docker-registry skopeo podman conmon; do
  command -v "$bin" >/dev/null 2>&1 || still+=("$bin")
done
if ! command -v crun >/dev/null 2>&1 && ! command -v runc >/dev/null 2>&1; then
  still+=("crun|runc")
fi
if [ ${#still[@]} -ne 0 ]; then
  echo "install-test-deps: still missing after install: ${still[*]}" >&2
  exit 1
fi
echo "install-test-deps: installed $(docker-registry --version 2>/dev/null | awk '{print $NF}' || true), $(skopeo --version), $(podman --version)"
