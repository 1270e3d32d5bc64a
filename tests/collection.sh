#!/usr/bin/env bash
# Collection tier of elephant.ha: ansible-test sanity, ansible-lint (production profile) and the
# molecule scenarios default, operations, failover and zookeeper (ZooKeeper as the DCS) on three
# podman systemd hosts.
# Works on a fresh Debian 12 machine as root: installs what it needs (Debian packages, a venv
# with Ansible and molecule, the podman images). Settings stay project-local: the machine's
# /etc is not changed. Exits non-zero when any part fails.
#   tests/collection.sh                 everything
#   tests/collection.sh sanity lint     only some parts (setup, sanity, lint, build, default, operations, failover, zookeeper)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
export DEBIAN_FRONTEND=noninteractive

STATE=${ELEPHANT_HA_STATE:-/var/tmp/elephant-ha}
VENV=${ELEPHANT_HA_COLLECTION_VENV:-$STATE/venv}
export CONTAINERS_CONF=$repo/scripts/podman/containers.conf
export ELEPHANT_HA_SSH_DIR=$STATE/ssh
export ANSIBLE_COLLECTIONS_PATH=$STATE/collections
export ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 ANSIBLE_NOCOLOR=1
export MOLECULE_NO_LOG=false
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(sanity lint build default operations failover zookeeper)

declare -a results=()
failed=0
record() { # name status seconds
  results+=("$(printf '%-20s %-6s %5ss' "$1" "$2" "$3")")
  [ "$2" = ok ] || failed=$((failed + 1))
}

cleanup() {
  # Leave no container or network of ours behind, whatever happened.
  for c in node1 node2 node3; do
    if podman container exists "$c" 2>/dev/null && \
       [ "$(podman inspect -f '{{ index .Config.Labels "owner" }}' "$c" 2>/dev/null)" = molecule ]; then
      podman rm -f "$c" >/dev/null 2>&1 || true
    fi
  done
  if podman network exists elephant-ha 2>/dev/null; then podman network rm -f elephant-ha >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

setup() {
  local pkgs=(podman runc debootstrap openssh-client python3-venv git netavark aardvark-dns iptables uidmap shellcheck)
  local missing=()
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if ((${#missing[@]})); then
    echo "== installing Debian packages: ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  mkdir -p "$STATE"
  if [ ! -x "$VENV/bin/ansible-playbook" ] || [ ! -x "$VENV/bin/molecule" ] || [ ! -x "$VENV/bin/ansible-lint" ]; then
    echo "== creating $VENV (Ansible 12, molecule, testinfra, ansible-lint)"
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r tests/collection-requirements.txt
  fi
  export PATH=$VENV/bin:$PATH
  # The collection as Ansible finds it: ANSIBLE_COLLECTIONS_PATH/ansible_collections/elephant/ha.
  mkdir -p "$ANSIBLE_COLLECTIONS_PATH/ansible_collections/elephant"
  ln -sfn "$repo" "$ANSIBLE_COLLECTIONS_PATH/ansible_collections/elephant/ha"
  # ansible-lint and molecule search ~/.ansible/collections first, where molecule installs a copy
  # of the collection; a copy left by an earlier (or interrupted) run would shadow this checkout.
  rm -rf "${ANSIBLE_HOME:-$HOME/.ansible}/collections/ansible_collections/elephant/ha"
  # Test key for root on the podman hosts.
  if [ ! -f "$ELEPHANT_HA_SSH_DIR/id_ed25519" ]; then
    mkdir -p "$ELEPHANT_HA_SSH_DIR" && chmod 700 "$ELEPHANT_HA_SSH_DIR"
    ssh-keygen -q -t ed25519 -N '' -C elephant-ha-tests -f "$ELEPHANT_HA_SSH_DIR/id_ed25519"
  fi
  chmod 644 "$ELEPHANT_HA_SSH_DIR/id_ed25519.pub"
  scripts/build-image.sh all
}

sanity() {
  # ansible-test wants the collection at .../ansible_collections/elephant/ha inside a git
  # repository; a copy of the tracked and new files is made there.
  local dest=$STATE/sanity/ansible_collections/elephant/ha
  rm -rf "$STATE/sanity" && mkdir -p "$dest"
  # What Ansible runs is checked: modules, module_utils, doc fragments, roles, playbooks, the
  # molecule tests. The daemon package pg_ha/ runs on the hosts under Debian's Python and has
  # its own tier (ruff, pytest); of it only what AnsiballZ ships with the modules is checked
  # here: __init__.py, client.py and config/defaults.py (stdlib only, which the import test
  # proves; pg_ha_config takes the dynamic defaults from config/defaults.py).
  git ls-files -co --exclude-standard -z \
    | grep -zvE '^(bench|tests|\.ci)/|^plugins/module_utils/pg_ha/.+/|^plugins/module_utils/pg_ha/[^/]+$' \
    | xargs -0 cp --parents -t "$dest"/
  cp --parents -t "$dest"/ plugins/module_utils/pg_ha/__init__.py plugins/module_utils/pg_ha/client.py \
    plugins/module_utils/pg_ha/config/__init__.py plugins/module_utils/pg_ha/config/defaults.py
  (cd "$dest" && git init -q && git add -A && git -c user.email=t@t -c user.name=t commit -qm sanity)
  # ansible-test fetches a pip bootstrap script from a host that is not reachable here: a
  # stand-in that uses ensurepip and the Debian CA bundle.
  mkdir -p ~/.ansible/test/cache
  cat >~/.ansible/test/cache/get_pip_24_2.py <<'PY'
import ensurepip, subprocess, sys
ensurepip.bootstrap()
args = [a for a in sys.argv[1:] if a not in ("install", "--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--cert", "/etc/ssl/certs/ca-certificates.crt"] + args))
PY
  (cd "$dest" && ansible-test sanity --python 3.11 --color no)
}

lint() {
  ansible-lint --profile production --offline playbooks roles molecule
}

scenario() {
  cleanup
  molecule test -s "$1"
}

run() { # label command...
  local label=$1 t0=$SECONDS
  shift
  echo "== $label"
  if "$@"; then record "$label" ok $((SECONDS - t0)); else record "$label" FAILED $((SECONDS - t0)); fi
}

t_setup=$SECONDS
setup
echo "== setup took $((SECONDS - t_setup)) s"
for part in "${parts[@]}"; do
  case $part in
    setup) ;;
    sanity) run sanity sanity ;;
    lint) run lint lint ;;
    build) run build bash tests/collection_build.sh ;;
    default|operations|failover|zookeeper) run "molecule:$part" scenario "$part" ;;
    *) echo "unknown part: $part" >&2; exit 64 ;;
  esac
done
echo "== collection tier"
printf '%s\n' "${results[@]}"
passed=$(( ${#results[@]} - failed ))
echo "collection: $passed passed, $failed failed"
[ "$failed" = 0 ]
