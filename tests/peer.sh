#!/usr/bin/env bash
# Patroni's own acceptance suite (its behave features, v4.1.4, MIT) run against pg_ha through
# the Patroni-compatible interfaces, with the workplace's runner (../shared/peer/run.sh).
#   tests/peer.sh                 the CI slice (about 4 minutes): crash recovery, nostream and
#                                 cascading members, standby clusters, the watchdog
#   tests/peer.sh all             every feature (about 25 minutes)
#   tests/peer.sh FEATURE...      the named features
# env: PEER_SUITE (the runner's directory; default ../shared/peer), DCS=etcd3|etcd|zookeeper.
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
trap 'rm -rf "$copy"' EXIT
cp -r "$suite/." "$copy/"
chmod -R u+w "$copy"
bash "$copy/run.sh" "${features[@]}"
