#!/usr/bin/env bash
# Side-by-side benchmark of pg_ha and Patroni; writes docs/BENCHMARKS.md.
#   bash bench/run.sh [--dcs etcd|zookeeper] [--runs N] [--quick] [--note TEXT] [--only patroni|pg_ha]
#                     [--steps idle,rest] [--output FILE]
# On a fresh Debian 12, as root: installs PostgreSQL 15, etcd (or ZooKeeper and python3-kazoo with
# --dcs zookeeper), HAProxy and the Python packages from apt, Patroni from PyPI into its own venv,
# then runs python3 -m bench (see bench/__main__.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" != 0 ]; then
  echo "bench: run as root (PostgreSQL members are started as user postgres)" >&2
  exit 2
fi

dcs=etcd
prev=""
for arg in "$@"; do
  case "$prev=$arg" in --dcs=zookeeper | *=--dcs=zookeeper) dcs=zookeeper ;; esac
  prev=$arg
done
pkgs=(postgresql-15 etcd-server etcd-client haproxy python3 python3-venv python3-psycopg2 python3-yaml
      python3-etcd util-linux git)
extras="etcd,etcd3"
if [ "$dcs" = zookeeper ]; then
  pkgs+=(zookeeper python3-kazoo)
  extras="etcd,etcd3,zookeeper"
fi
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "== installing Debian packages: ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Patroni in its own venv made with Debian's python3, readable by user postgres.
PATRONI_VENV=${PATRONI_VENV:-/var/lib/elephant-bench/patroni-venv}
if [ ! -x "$PATRONI_VENV/bin/patroni" ] ||
   { [ "$dcs" = zookeeper ] && ! "$PATRONI_VENV/bin/python" -c 'import kazoo' 2>/dev/null; }; then
  echo "== installing Patroni ($extras) from PyPI into $PATRONI_VENV"
  mkdir -p "$(dirname "$PATRONI_VENV")"
  [ -x "$PATRONI_VENV/bin/python" ] || /usr/bin/python3 -m venv "$PATRONI_VENV"
  "$PATRONI_VENV/bin/pip" install -q --disable-pip-version-check "patroni[$extras]" psycopg2-binary 2>&1 |
    { grep -v 'is ignored: it is neither a file nor a directory' || true; }
fi
chmod -R a+rX "$PATRONI_VENV"
chmod a+rx "$(dirname "$PATRONI_VENV")"

# Everything the bench starts is recorded here; the trap ends what is left if Python could not.
REGISTRY=$(mktemp /tmp/elephant-bench-registry.XXXXXX)
export BENCH_REGISTRY=$REGISTRY
bench_pid=""
cleanup() {
  if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
    kill -TERM "$bench_pid" 2>/dev/null || true
    wait "$bench_pid" 2>/dev/null || true
  fi
  PYTHONPATH=. /usr/bin/python3 -m bench.cleanup "$REGISTRY" || true
  rm -f "$REGISTRY"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

PYTHONPATH=. /usr/bin/python3 -m bench --patroni-venv "$PATRONI_VENV" "$@" &
bench_pid=$!
status=0
wait "$bench_pid" || status=$?
bench_pid=""
exit "$status"
