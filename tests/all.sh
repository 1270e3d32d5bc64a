#!/usr/bin/env bash
# Every test tier of elephant.ha: lint, unit, integration (real etcd, real ZooKeeper + PostgreSQL 15).
# Works on a fresh Debian 12 machine as root: installs the Debian and PyPI packages it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

pkgs=(postgresql-15 etcd-server etcd-client zookeeper libslf4j-java haproxy zsh iptables sudo python3-venv python3-psycopg2 python3-yaml
      python3-etcd python3-kazoo)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "== installing Debian packages: ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

VENV=${PG_HA_TEST_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV"
  /usr/bin/python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check -r tests/requirements.txt -e .

echo "== ruff"
"$VENV/bin/ruff" check plugins tests

echo "== pytest: unit + integration"
"$VENV/bin/python" -m pytest -p no:cacheprovider -ra --durations=15 tests/unit tests/integration "$@"

echo "== chaos (short): faults on real processes, 0 split brain, bounded losses (full run: docs/RELIABILITY.md)"
"$VENV/bin/python" -m pytest -p no:cacheprovider -ra tests/chaos

echo "== peer: Patroni's acceptance features against pg_ha (slice; all: tests/peer.sh all)"
bash tests/peer.sh

# Collection tier (roles, modules, playbooks): ansible-test sanity, ansible-lint and the molecule
# scenarios on podman hosts; see tests/collection.sh.
bash tests/collection.sh
