# -*- coding: utf-8 -*-
# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared parts of the modules that talk to the pg_ha REST API through pg_ha/client.py."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from ansible_collections.elephant.ha.plugins.module_utils.pg_ha.client import (
    PgHaClient,
    PgHaClientError,
    base_url_from_api_url,
)

LEADER_ROLES = ('leader', 'standby_leader')
HEALTHY_STATES = ('running', 'streaming')


def api_argument_spec():
    return dict(
        api_url=dict(type='str', default='http://127.0.0.1:8008'),
        api_username=dict(type='str'),
        api_password=dict(type='str', no_log=True),
        ca_file=dict(type='path'),
        client_cert=dict(type='path'),
        client_key=dict(type='path', no_log=False),
        validate_certs=dict(type='bool', default=True),
        timeout=dict(type='float', default=10),
    )


class Api(object):
    """One member's REST API plus the credentials to reach the others."""

    def __init__(self, module, api_url=None):
        self.module = module
        params = module.params
        self.url = api_url or params['api_url']
        try:
            self.client = PgHaClient(self.url, username=params['api_username'], password=params['api_password'],
                                     cafile=params['ca_file'], certfile=params['client_cert'],
                                     keyfile=params['client_key'], verify=params['validate_certs'],
                                     timeout=params['timeout'])
        except PgHaClientError as exc:
            module.fail_json(msg=exc.message)

    def for_member(self, member):
        """The API of another member of the cluster (from its api_url in GET /cluster)."""
        return Api(self.module, base_url_from_api_url(member['api_url']))

    def call(self, name, *args, **kwargs):
        """(status, body) of one client call; fails the module when no HTTP answer came."""
        try:
            return getattr(self.client, name)(*args, **kwargs)
        except PgHaClientError as exc:
            self.module.fail_json(msg=exc.message, api_url=self.url)

    def try_call(self, name, *args, **kwargs):
        """(status, body), or (None, message) when no HTTP answer came."""
        try:
            return getattr(self.client, name)(*args, **kwargs)
        except PgHaClientError as exc:
            return None, exc.message

    def get(self, name, what):
        """Body of a read that must answer 200 with JSON."""
        status, body = self.call(name)
        if status != 200 or not isinstance(body, (dict, list)):
            self.module.fail_json(msg='%s: %s answered %s: %s' % (what, self.url, status, body), api_url=self.url)
        return body


def leader_of(cluster):
    for member in cluster.get('members', []):
        if member.get('role') in LEADER_ROLES:
            return member
    return None


def member_named(cluster, name):
    for member in cluster.get('members', []):
        if member.get('name') == name:
            return member
    return None


def wait_until(predicate, timeout, interval=1.0):
    """Call predicate() until it returns a true value or the deadline passes; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
