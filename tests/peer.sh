#!/usr/bin/env bash
# Patroni's own acceptance suite (its behave features, v4.1.4, MIT) run against pg_ha through
# the Patroni-compatible interfaces, with the workplace's runner (../shared/peer/run.sh).
#   tests/peer.sh                 the CI slice (about 4 minutes): crash recovery, nostream and
#                                 cascading members, standby clusters, the watchdog
#   tests/peer.sh all             every feature (about 25 minutes)
#   tests/peer.sh FEATURE...      the named features
# env: PEER_SUITE (the runner's directory; default ../shared/peer), DCS=etcd3|etcd|zookeeper.
# DCS=zookeeper: when nothing answers on localhost:2181, a standalone ZooKeeper (Debian's jars,
# tests/harness/zookeeper.py) is started there for the run and stopped by its PID at the end;
# the features (run as postgres) pause it with `sudo kill -SIGSTOP/-SIGCONT`, which a sudoers
# rule allows for the run (/etc/sudoers.d/elephant-ha-peer, removed at the end).
# The runner copies the features into its work directory; it is given a writable copy of the
# suite, as the shared one is read-only. Prints the runner's lines and "peer suite: P passed,
# F failed"; exits non-zero when a scenario fails.
set -euo pipefail
cd "$(dirname "$0")/.."
suite=""
for d in "${PEER_SUITE:-}" ../shared/peer /work/shared/peer; do
  if [ -n "$d" ] && [ -f "$d/run.sh" ]; then suite=$d; break; fi
done
if [ -z "$suite" ]; then
  echo "peer suite: NOT RUN - Patroni's features are not on this machine (set PEER_SUITE to the directory of run.sh)"
  exit 0
fi
slice=(recovery nostream_node cascading_replication standby_cluster watchdog)
if [ "${1:-}" = all ]; then features=(); elif [ $# -gt 0 ]; then features=("$@"); else features=("${slice[@]}"); fi
copy=$(mktemp -d /var/tmp/elephant-ha-peer-suite.XXXXXX)
zk_pid=""
zk_dir=""
sudoers=""
finish() {
  if [ -n "$zk_pid" ]; then
    kill "$zk_pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$zk_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$zk_pid" 2>/dev/null || true
  fi
  rm -rf "$copy" ${zk_dir:+"$zk_dir"} ${sudoers:+"$sudoers"}
}
trap finish EXIT
if [ "${DCS:-etcd3}" = zookeeper ] && ! command -v sudo >/dev/null; then
  # the features pause an external ZooKeeper with `sudo kill -SIGSTOP` (tests/all.sh installs it)
  echo "peer suite: DCS=zookeeper needs sudo (apt-get install sudo)"; exit 1
fi
if [ "${DCS:-etcd3}" = zookeeper ] && ! (exec 3<>/dev/tcp/127.0.0.1/2181) 2>/dev/null; then
  zk_dir=$(mktemp -d /var/tmp/elephant-ha-peer-zk.XXXXXX)
  zk_pid=$(.venv/bin/python -c '
import sys
from pathlib import Path
from tests.harness.zookeeper import ZooKeeperServer
zk = ZooKeeperServer("peer", Path(sys.argv[1]))
zk.client_port = 2181
zk.start()
print(zk.proc.pid)' "$zk_dir") || { echo "peer suite: ZooKeeper did not start on localhost:2181 (log: $zk_dir/zookeeper.log)"; exit 1; }
  echo "ZooKeeper on localhost:2181 (pid $zk_pid)"
fi
if [ "${DCS:-etcd3}" = zookeeper ] && [ ! -e /etc/sudoers.d/elephant-ha-peer ]; then
  sudoers=/etc/sudoers.d/elephant-ha-peer
  printf 'postgres ALL=(root) NOPASSWD: /usr/bin/kill, /bin/kill\n' > "$sudoers"
  chmod 0440 "$sudoers"
fi
cp -r "$suite/." "$copy/"
chmod -R u+w "$copy"
bash "$copy/run.sh" "${features[@]}"
