#!/usr/bin/env bash
# The collection tarball ships the collection and nothing of a working tree: `ansible-galaxy
# collection build` of a copy of the tracked files in which a working tree's leftovers are
# planted (a venv, generated inventory secrets, test output, build and cache directories,
# bytecode), then its file list checked: none of them in it; the roles, modules, playbooks and
# docs are. Exits non-zero on the first finding. Needs ansible-galaxy on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /var/tmp/elephant-ha-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
git ls-files -z | (cd "$PWD" && xargs -0 cp --parents -t "$work/")
planted=(.venv/bin/python inventories/example/.elephant-ha/restapi-password .elephant-ha/etcd-pki/ca.key
         tests/output/junit.xml build/lib/pg_ha/__init__.py .pytest_cache/v/x .ruff_cache/x .hypothesis/x
         plugins/module_utils/pg_ha/__pycache__/daemon.cpython-311.pyc molecule/shared/tests/__pycache__/x.pyc)
for f in "${planted[@]}"; do mkdir -p "$work/$(dirname "$f")"; echo planted > "$work/$f"; done
(cd "$work" && ansible-galaxy collection build --output-path "$work/out" . >/dev/null)
list=$(tar tzf "$work"/out/elephant-ha-*.tar.gz)
bad=0
for f in "${planted[@]}"; do
  if grep -qxF "$f" <<<"$list"; then echo "collection build: ships $f"; bad=1; fi
done
for f in MANIFEST.json FILES.json README.md roles/pg_ha/tasks/main.yml roles/zookeeper/tasks/tls.yml \
         plugins/modules/pg_ha_switchover.py plugins/module_utils/pg_ha/node/daemon.py playbooks/site.yml docs/SECURITY.md; do
  if ! grep -qxF "$f" <<<"$list"; then echo "collection build: misses $f"; bad=1; fi
done
echo "collection build: $(wc -l <<<"$list") entries, $(du -k "$work"/out/*.tar.gz | cut -f1) KiB"
exit $bad
