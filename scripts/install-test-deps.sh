#!/usr/bin/env bash
# Installs what the end-to-end tests (test/e2e) drive: Debian's distribution 2.8 registry,
# skopeo, podman, containerd (with ctr) and a docker CLI. Idempotent: when everything is there it
# only says so and exits 0. Only the packages of what is missing are installed.
#
# podman only pulls and pushes in the tests (never runs a container), as root with vfs storage, so
# it needs none of fuse-overlayfs, slirp4netns, netavark or uidmap (subuid maps are for rootless).
# Its hard dependencies (conmon, crun|runc, golang-github-containers-common with policy.json) come with it; they
# are checked below too, because libpod refuses to start without an OCI runtime even to pull.
#
# containerd: the tests start a private daemon (own root, state and socket, CRI disabled) and
# drive it with ctr; the package's own service is neither needed nor used.
#
# docker CLI: the tests need only the client; `docker login` runs client-side when no engine
# answers (the tests point DOCKER_HOST at a socket that does not exist). Any `docker` on PATH
# will do: a static client from download.docker.com (e.g. 28.2.2 in /usr/local/bin, owned by no
# package), docker-ce-cli, or Debian's docker.io. When there is none, Debian's docker.io is
# installed (bookworm: 20.10.24; bookworm has no separate docker-cli package). It also ships
# dockerd, so while it installs, a policy-rc.d (if the machine has none) keeps its postinst from
# starting the engine; the tests must not depend on a running engine.
#
# slapd + ldap-utils (OpenLDAP): the LDAP tests start their own slapd on a free loopback port
# with a config generated in a temp dir (test/helpers/slapd.ts). The package must neither
# configure a system directory nor start one that could take port 389: debconf is preseeded with
# slapd/no_configuration and the policy-rc.d guard below keeps its postinst from starting it.
set -euo pipefail

# binary -> Debian package that provides it
declare -A package_of=(
  [docker-registry]=docker-registry
  [skopeo]=skopeo
  [podman]=podman
  [conmon]=podman
  [containerd]=containerd
  [ctr]=containerd
  [docker]=docker.io
  [slapd]=slapd
  [ldapadd]=ldap-utils
  # headless browser for test/e2e/sso-browser.test.ts (driven by playwright-core, never downloaded)
  [chromium]=chromium
  # the ext_auth/ext_authz examples in docs/external-auth.md, run by their test
  [openssl]=openssl
  [jq]=jq
  # test/e2e/deploy.test.ts: `docker-compose config` validates deploy/docker-compose.yml (no
  # engine needed), systemd-analyze verifies deploy/systemd/sts-docker-auth.service
  [docker-compose]=docker-compose
  [systemd-analyze]=systemd
  # test/integration/lockout-redis.test.ts starts its own redis-server on a free loopback port
  [redis-server]=redis-server
)
binaries=(docker-registry skopeo podman conmon containerd ctr docker slapd ldapadd chromium openssl jq docker-compose systemd-analyze redis-server)

# Fills `missing` (what is absent) and `packages` (what to install for it, each once).
check() {
  missing=()
  packages=()
  local bin pkg
  for bin in "${binaries[@]}"; do
    command -v "$bin" >/dev/null 2>&1 && continue
    missing+=("$bin")
    pkg=${package_of[$bin]}
    [[ " ${packages[*]-} " == *" $pkg "* ]] || packages+=("$pkg")
  done
  if ! command -v crun >/dev/null 2>&1 && ! command -v runc >/dev/null 2>&1; then
    missing+=("crun|runc")
    [[ " ${packages[*]-} " == *" podman "* ]] || packages+=(podman)
  fi
  if [ ! -f /etc/containers/policy.json ]; then
    missing+=("/etc/containers/policy.json")
    [[ " ${packages[*]-} " == *" golang-github-containers-common "* ]] || packages+=(golang-github-containers-common)
  fi
}

check
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-test-deps: every test dependency is present (${binaries[*]})"
  exit 0
fi

echo "install-test-deps: missing ${missing[*]}"
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-deps: need root and apt-get to install them." >&2
  echo "  Install the Debian packages yourself: ${packages[*]}" >&2
  echo "  e.g. sudo apt-get install -y --no-install-recommends ${packages[*]}" >&2
  exit 1
fi

policy_rc=/usr/sbin/policy-rc.d
made_policy_rc=
cleanup() {
  if [ -n "$made_policy_rc" ]; then rm -f "$policy_rc"; fi
}
trap cleanup EXIT
if [[ " ${packages[*]} " == *" docker.io "* || " ${packages[*]} " == *" slapd "* ]] && [ ! -e "$policy_rc" ]; then
  # 101: "action forbidden by policy": invoke-rc.d and deb-systemd-invoke then start nothing.
  printf '#!/bin/sh\n# install-test-deps.sh: no service starts while the test packages install\nexit 101\n' >"$policy_rc"
  chmod 755 "$policy_rc"
  made_policy_rc=1
fi

echo "install-test-deps: installing Debian packages: ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
if [[ " ${packages[*]} " == *" slapd "* ]]; then
  # Install the binaries only: no dc=nodomain database, no /etc/ldap/slapd.d, no system slapd.
  echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

check
if [ ${#missing[@]} -ne 0 ]; then
  echo "install-test-deps: still missing after install: ${missing[*]}" >&2
  exit 1
fi
echo "install-test-deps: installed $(docker-registry --version 2>/dev/null | awk '{print $NF}' || true), $(skopeo --version)," \
  "$(podman --version), $(ctr --version), $(docker --version)"
