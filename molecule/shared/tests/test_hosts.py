# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every host: services, files and pg_hactl."""
import pytest


def test_pg_ha_service_runs(host):
    service = host.service("pg_ha")
    assert service.is_enabled
    assert service.is_running


def test_postgresql_is_a_child_of_pg_ha(host):
    # Debian's units are masked: PostgreSQL runs under pg_ha.service only.
    assert host.run("systemctl is-enabled postgresql.service").stdout.strip() == "masked"
    cgroup = host.check_output("cat /proc/$(head -1 /var/lib/postgresql/15/molecule/postmaster.pid)/cgroup")
    assert "pg_ha.service" in cgroup
    assert not host.file("/etc/postgresql/15/main").exists


def test_config_file_is_private_and_valid(host):
    config = host.file("/etc/pg_ha/pg_ha.yml")
    assert config.user == "postgres"
    assert config.mode == 0o600
    host.check_output("PYTHONPATH=/opt/pg_ha/lib python3 -m pg_ha --validate-config /etc/pg_ha/pg_ha.yml")


def test_haproxy_listens(host):
    assert host.service("haproxy").is_running
    for port in (5000, 5001, 7000):
        assert host.socket(f"tcp://0.0.0.0:{port}").is_listening


@pytest.mark.parametrize("user", ["root", "postgres"])
def test_pg_hactl_list(host, user):
    with host.sudo(user):
        out = host.check_output("pg_hactl list")
    for name in ("node1", "node2", "node3"):
        assert name in out
    assert "Leader" in out
    assert out.count("streaming") == 2
