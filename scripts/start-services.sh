#!/usr/bin/env bash
# Makes PostgreSQL reachable on 127.0.0.1:5432 with trust authentication and a database `test`,
# for the PostgreSQL store tests (test/store/postgres.test.ts). Idempotent: when PostgreSQL
# already answers it only checks that `test` exists, quietly. It starts a stopped cluster, or
# installs PostgreSQL (Debian packages) when there is none; it never stops or restarts a running
# server (a new or just-started cluster's configuration is reloaded, which drops no connection).
set -euo pipefail

HOST=127.0.0.1
PORT=5432
ADMIN_USER=postgres

say() { echo "start-services: $*"; }
die() {
  echo "start-services: $*" >&2
  echo "start-services: the PostgreSQL store tests need a server on $HOST:$PORT accepting user $ADMIN_USER without a password (trust)." >&2
  exit 1
}

ready() { pg_isready -q -h "$HOST" -p "$PORT" >/dev/null 2>&1; }

# The newest installed major version, e.g. 15.
newest() { ls "$1" 2>/dev/null | sort -V | tail -n 1; }

# Listen on loopback and trust loopback connections. Only for the cluster this script creates:
# an existing cluster's authentication is its owner's choice (if it refuses us, we say so below).
configure() {
  local conf="/etc/postgresql/$1/main"
  [ -d "$conf" ] || return 0
  if ! grep -q '^# sts-docker-auth' "$conf/pg_hba.conf"; then
    # Prepended: pg_hba.conf is read top-down and the first matching line wins.
    { printf '# sts-docker-auth tests: trust loopback TCP connections\nhost all all 127.0.0.1/32 trust\n'; cat "$conf/pg_hba.conf"; } >"$conf/pg_hba.conf.new"
    chown --reference="$conf/pg_hba.conf" "$conf/pg_hba.conf.new"
    chmod --reference="$conf/pg_hba.conf" "$conf/pg_hba.conf.new"
    mv "$conf/pg_hba.conf.new" "$conf/pg_hba.conf"
  fi
  mkdir -p "$conf/conf.d"
  if [ ! -f "$conf/conf.d/sts-docker-auth.conf" ]; then
    printf "listen_addresses = '%s'\nport = %s\n" "$HOST" "$PORT" >"$conf/conf.d/sts-docker-auth.conf"
    chown --reference="$conf/postgresql.conf" "$conf/conf.d/sts-docker-auth.conf"
  fi
}

start_cluster() {
  local version=$1
  say "starting PostgreSQL $version (cluster main)"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || die "pg_ctlcluster $version main start failed"
}

has_test_db() {
  psql -h "$HOST" -p "$PORT" -U "$ADMIN_USER" -d postgres -X -w -tAc "select 1 from pg_database where datname = 'test'"
}

# The usual case, in one process: the server answers and the database exists.
if [ "$(has_test_db 2>/dev/null)" = 1 ]; then exit 0; fi

if ! ready; then
  command -v pg_isready >/dev/null 2>&1 || [ "$(id -u)" -eq 0 ] || die "PostgreSQL is not installed and installing it needs root"
  if [ "$(id -u)" -ne 0 ] && [ "$(id -un)" != postgres ]; then
    die "PostgreSQL does not answer on $HOST:$PORT and starting it needs root (or user postgres)"
  fi
  version=$(newest /etc/postgresql)
  if [ -n "$version" ] && [ -d "/etc/postgresql/$version/main" ]; then
    start_cluster "$version"
  else
    command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and there is no apt-get to install it"
    say "installing PostgreSQL (apt-get install postgresql)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || die "apt-get update failed"
    apt-get install -y -qq postgresql >/dev/null || die "apt-get install postgresql failed"
    version=$(newest /usr/lib/postgresql)
    [ -n "$version" ] || die "no PostgreSQL server under /usr/lib/postgresql after installing"
    # The package creates and starts a cluster where it can; in a container without an init
    # system it may have done neither.
    if [ ! -d "/etc/postgresql/$version/main" ]; then
      pg_createcluster "$version" main >/dev/null || die "pg_createcluster $version main failed"
    fi
    configure "$version"
    if ready; then
      # Started by the package: the trust line takes effect on reload (listen_addresses
      # 'localhost' already covers 127.0.0.1).
      pg_ctlcluster --skip-systemctl-redirect "$version" main reload >/dev/null 2>&1 || true
    else
      start_cluster "$version"
    fi
  fi
  for _ in $(seq 1 60); do
    ready && break
    sleep 0.5
  done
  ready || die "PostgreSQL does not answer on $HOST:$PORT after 30 s (see /var/log/postgresql/)"
  say "PostgreSQL answers on $HOST:$PORT"
fi

# A server that answers may still refuse us (password required): say so rather than let the
# tests fail obscurely.
exists=$(has_test_db 2>&1) ||
  die "cannot connect as $ADMIN_USER to $HOST:$PORT: $exists (add 'host all all 127.0.0.1/32 trust' to pg_hba.conf)"
if [ "$exists" != 1 ]; then
  # Another run may create it at the same time; only a database that still is missing is an error.
  createdb -h "$HOST" -p "$PORT" -U "$ADMIN_USER" -w test 2>/dev/null ||
    [ "$(has_test_db)" = 1 ] ||
    die "createdb test failed"
  say "created database test"
fi
