#!/usr/bin/env bash
# Build the podman images the molecule scenarios and the demo boot as systemd hosts.
#   localhost/elephant-ha-debian12      Debian 12 minbase + systemd + sshd + python3 (plain host)
#   localhost/elephant-ha-debian12-pg   the same + PostgreSQL 15, etcd, HAProxy, python3 libs
# No registry is reachable here, so the root file system comes from debootstrap.
# An image that exists is reused; --force rebuilds. Needs root, podman, debootstrap.
# Usage: scripts/build-image.sh [--force] [plain|pg|all]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/podman/containers.conf}
force=0
what=all
for arg in "$@"; do
  case $arg in
    --force) force=1 ;;
    plain|pg|all) what=$arg ;;
    *) echo "usage: $0 [--force] [plain|pg|all]" >&2; exit 64 ;;
  esac
done
PLAIN=localhost/elephant-ha-debian12
PG=localhost/elephant-ha-debian12-pg
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d /var/tmp/elephant-ha-image.XXXXXX)
builder=elephant-ha-image-build-$$
cleanup() {
  podman rm -f "$builder" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

have() { podman image exists "$1" && [ "$force" = 0 ]; }

build_plain() {
  if have "$PLAIN"; then echo "== image $PLAIN exists"; return; fi
  echo "== debootstrap bookworm -> $PLAIN"
  local t0=$SECONDS root=$work/rootfs
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,iproute2,procps,iptables,iputils-ping,ca-certificates,openssh-server \
    bookworm "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log"; exit 1; }
  rm -f "$root/etc/apt/sources.list"
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/debian.sources"
  else
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$MIRROR" "$MIRROR" >"$root/etc/apt/sources.list"
  fi
  # Small and neutral: no apt lists (an old stamp so apt's cache_valid_time refreshes them),
  # no machine id (systemd makes one per container), no units that need real hardware.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  touch -d 2000-01-01 "$root/var/lib/apt/lists"
  : >"$root/etc/machine-id"
  for unit in systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
  done
  mkdir -p "$root/root/.ssh" && chmod 700 "$root/root/.ssh"
  tar -C "$root" -c . | podman import --change 'CMD ["/sbin/init"]' - "$PLAIN" >/dev/null
  echo "== built $PLAIN in $((SECONDS - t0)) s"
}

build_pg() {
  if have "$PG"; then echo "== image $PG exists"; return; fi
  echo "== $PLAIN + PostgreSQL 15, etcd, HAProxy -> $PG"
  local t0=$SECONDS
  podman run --name "$builder" --network host "$PLAIN" bash -euc '
    export DEBIAN_FRONTEND=noninteractive
    mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold \
      postgresql-15 etcd-server etcd-client haproxy python3-psycopg2 python3-yaml python3-etcd >/dev/null
    apt-get clean' >"$work/pg.log" 2>&1 || { tail -20 "$work/pg.log"; exit 1; }
  podman commit -q "$builder" "$PG" >/dev/null
  echo "== built $PG in $((SECONDS - t0)) s"
}

case $what in
  plain) build_plain ;;
  pg) build_plain; build_pg ;;
  all) build_plain; build_pg ;;
esac
