#!/usr/bin/env bash
# Bring up a three-host HA PostgreSQL cluster on local podman hosts with playbooks/site.yml and
# print `pg_hactl list`. For a fresh Debian 12 machine, as root: installs podman, debootstrap
# and Ansible (in a venv), builds a Debian 12 systemd host image if missing, starts three
# privileged containers node1..node3 (10.89.78.11-13) and runs site.yml over SSH.
#   scripts/demo.sh            create (or reuse) the hosts and converge them
#   scripts/demo.sh --destroy  remove the demo hosts and network
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
export DEBIAN_FRONTEND=noninteractive
export CONTAINERS_CONF=$here/podman/containers.conf
STATE=${ELEPHANT_HA_STATE:-/var/tmp/elephant-ha}
DEMO=$STATE/demo
NET=elephant-ha-demo
SUBNET=10.89.78
IMAGE=localhost/elephant-ha-debian12
hosts=(node1 node2 node3)

destroy() {
  for h in "${hosts[@]}"; do podman rm -f -t 5 "demo-$h" >/dev/null 2>&1 || true; done
  if podman network exists "$NET" 2>/dev/null; then podman network rm -f "$NET" >/dev/null 2>&1 || true; fi
}
if [ "${1:-}" = --destroy ]; then destroy; echo "demo hosts removed"; exit 0; fi
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

missing=()
for p in podman runc debootstrap openssh-client python3-venv netavark aardvark-dns iptables; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "== installing ${missing[*]}"
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
VENV=${ELEPHANT_HA_COLLECTION_VENV:-$STATE/venv}
if [ ! -x "$VENV/bin/ansible-playbook" ]; then
  echo "== installing Ansible into $VENV"
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check 'ansible>=12,<13'
fi
export PATH=$VENV/bin:$PATH
"$here/build-image.sh" plain

# On failure or interrupt before the cluster is up, leave nothing behind.
trap 'echo "demo failed: removing its hosts" >&2; destroy' ERR INT TERM

mkdir -p "$DEMO/collections/ansible_collections/elephant" && chmod 700 "$DEMO"
ln -sfn "$repo" "$DEMO/collections/ansible_collections/elephant/ha"
[ -f "$DEMO/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C elephant-ha-demo -f "$DEMO/id_ed25519"
chmod 644 "$DEMO/id_ed25519.pub"
podman network exists "$NET" || podman network create --subnet "$SUBNET.0/24" "$NET" >/dev/null
i=0
for h in "${hosts[@]}"; do
  i=$((i + 1))
  if ! podman container exists "demo-$h"; then
    podman run -d --name "demo-$h" --hostname "$h" --privileged --systemd=always \
      --network "$NET" --ip "$SUBNET.1$i" --mac-address "0a:58:0a:59:4e:1$i" --sysctl net.ipv4.ip_forward=0 \
      --add-host "node1:$SUBNET.11" --add-host "node2:$SUBNET.12" --add-host "node3:$SUBNET.13" \
      -v "$DEMO/id_ed25519.pub:/root/.ssh/authorized_keys:ro" "$IMAGE" /sbin/init >/dev/null
  else
    podman start "demo-$h" >/dev/null
  fi
done

# Inventory: the example's layout with these addresses and generated secrets.
if [ ! -f "$DEMO/secrets.yml" ]; then
  python3 - "$DEMO/secrets.yml" <<'PY'
import secrets, sys
names = ["superuser", "replication", "rewind", "restapi"]
with open(sys.argv[1], "w") as f:
    f.write("---\n" + "".join(f"pg_ha_{n}_password: {secrets.token_urlsafe(18)}\n" for n in names))
PY
  chmod 600 "$DEMO/secrets.yml"
fi
cat >"$DEMO/inventory.yml" <<INV
---
all:
  vars:
    ansible_user: root
    ansible_python_interpreter: /usr/bin/python3
    ansible_ssh_private_key_file: $DEMO/id_ed25519
    ansible_ssh_common_args: -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no
    pg_ha_scope: demo
    etcd_tls_enabled: true
    etcd_auth_enabled: true
  hosts:
    node1: {ansible_host: $SUBNET.11}
    node2: {ansible_host: $SUBNET.12}
    node3: {ansible_host: $SUBNET.13, pg_ha_tags: {nofailover: true}}
  children:
    etcd: {hosts: {node1: {}, node2: {}, node3: {}}}
    pg_ha: {hosts: {node1: {}, node2: {}, node3: {}}}
    haproxy: {hosts: {node1: {}, node2: {}, node3: {}}}
INV

echo "== waiting for the hosts to boot"
for h in "${hosts[@]}"; do
  deadline=$((SECONDS + 60))
  until podman exec "demo-$h" systemctl is-system-running 2>/dev/null | grep -qE 'running|degraded'; do
    [ $SECONDS -lt $deadline ] || { echo "demo-$h did not boot" >&2; exit 1; }
    sleep 0.5
  done
done

echo "== ansible-playbook playbooks/site.yml"
t0=$SECONDS
ANSIBLE_COLLECTIONS_PATH=$DEMO/collections ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_PIPELINING=True \
ANSIBLE_FORKS=10 ANSIBLE_SSH_ARGS='-o ControlMaster=auto -o ControlPersist=120s' \
  ansible-playbook -i "$DEMO/inventory.yml" -e "@$DEMO/secrets.yml" "$repo/playbooks/site.yml"
echo "== site.yml took $((SECONDS - t0)) s"
trap - ERR INT TERM

echo "== pg_hactl list (on node1)"
podman exec demo-node1 pg_hactl list
cat <<MSG

The cluster runs: podman exec -it demo-node1 bash   (pg_hactl, psql -h 127.0.0.1 -p 5000 -U postgres)
Inventory: $DEMO/inventory.yml   secrets: $DEMO/secrets.yml
Remove it: scripts/demo.sh --destroy
MSG
