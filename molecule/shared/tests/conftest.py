# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers for the testinfra checks of the molecule scenarios (run on the podman hosts)."""
import json
import time

import pytest

SUPERUSER_PASSWORD = "molecule-superuser"
HOSTS = {"node1": "10.89.77.11", "node2": "10.89.77.12", "node3": "10.89.77.13"}
NOFAILOVER = "node3"


def api_get(host, path):
    """GET a REST API path on the host's own daemon: (status, parsed JSON or text)."""
    script = (
        "import http.client\n"
        "c=http.client.HTTPConnection('127.0.0.1',8008,timeout=5)\n"
        f"c.request('GET','{path}')\n"
        "r=c.getresponse()\n"
        "print(r.status); print(r.read().decode())\n"
    )
    out = host.check_output("python3 -c %s", script)
    status, body = out.split("\n", 1)
    try:
        return int(status), json.loads(body)
    except ValueError:
        return int(status), body


def api_call(host, method, path, username=None, password=None):
    """One request to the host's own REST API, optionally with basic auth: (status, body text).
    The credentials reach the host's Python on stdin, not on a command line."""
    script = (
        "import base64,http.client,sys\n"
        "user,pw=sys.stdin.read().split('\\n')[:2]\n"
        "h={'Authorization':'Basic '+base64.b64encode((user+':'+pw).encode()).decode()} if user else {}\n"
        "c=http.client.HTTPConnection('127.0.0.1',8008,timeout=10)\n"
        f"c.request('{method}','{path}',headers=h)\n"
        "r=c.getresponse()\n"
        "print(r.status); print(r.read().decode())\n"
    )
    stdin = f"{username or ''}\n{password or ''}\n"
    out = host.check_output("printf %s %s | python3 -c %s", "%s", stdin, script)
    status, _newline, body = out.partition("\n")
    return int(status), body


def pg_ha_config(host):
    """The daemon's configuration file on the host, parsed (read as root)."""
    text = host.check_output("python3 -c %s",
                             "import json,yaml; print(json.dumps(yaml.safe_load(open('/etc/pg_ha/pg_ha.yml'))))")
    return json.loads(text)


def psql(host, port, sql, user="postgres"):
    """Run SQL through HAProxy on the host (127.0.0.1:port); the result's stdout, stripped."""
    cmd = host.run("PGPASSWORD=%s PGCONNECT_TIMEOUT=5 psql -h 127.0.0.1 -p %s -U %s -d postgres -XAtqc %s",
                   SUPERUSER_PASSWORD, str(port), user, sql)
    return cmd


def wait_primary_port(host, address, timeout=30):
    """Wait until HAProxy's port 5000 on the host reaches the writable primary at address.
    HAProxy moves the port only after its checks (inter 1s, fall 2) see /primary change, so right
    after a switchover a client can still land on the old leader; this waits for that window."""
    def routed():
        out = psql(host, 5000, "select pg_is_in_recovery(), inet_server_addr()")
        return out.rc == 0 and out.stdout.strip() == f"f|{address}"

    wait_for(routed, timeout, what=f"HAProxy port 5000 routed to the primary {address}")


def wait_for(predicate, timeout, interval=1.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"{what} not reached within {timeout}s (last: {last!r})")
