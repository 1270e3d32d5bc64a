#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_ha_config
short_description: Set the dynamic configuration of a pg_ha cluster
version_added: 0.1.0
description:
  - Compares the desired settings with the cluster's dynamic configuration (C(GET /config)) and
    sends only the difference (C(PATCH /config)). Settings not named are left as they are.
  - Values compare as PostgreSQL does for parameters (V(200) equals V("200"), V(on) equals V(true)).
  - A setting given as V(null) is removed.
  - After a change the members apply it within one HA cycle; the module waits up to two cycles
    (bounded by O(wait_timeout)) and returns the members that then need a restart.
author:
  - elephant.ha developers (@elephant-ha)
extends_documentation_fragment:
  - elephant.ha.pg_ha_api
attributes:
  check_mode:
    support: full
    description: Computes and reports the difference without sending it.
  diff_mode:
    support: full
    description: Shows the configuration before and after.
options:
  config:
    description:
      - Desired settings, nested as in the dynamic configuration (C(ttl), C(loop_wait),
        C(postgresql.parameters), C(postgresql.use_pg_rewind), ...).
    type: dict
    required: true
  wait_timeout:
    description:
      - Upper bound in seconds for waiting until the members have applied a change; V(0) does not wait.
    type: int
    default: 60
'''

EXAMPLES = r'''
- name: Raise work_mem everywhere
  elephant.ha.pg_ha_config:
    api_username: pg_ha
    api_password: "{{ pg_ha_restapi_password }}"
    config:
      postgresql:
        parameters:
          work_mem: 16MB

- name: Faster failover, and drop a parameter override
  elephant.ha.pg_ha_config:
    api_username: pg_ha
    api_password: "{{ pg_ha_restapi_password }}"
    config:
      ttl: 20
      loop_wait: 5
      postgresql:
        parameters:
          log_min_duration_statement: null
'''

RETURN = r'''
changes:
  description: The difference that was (or in check mode would be) sent with C(PATCH /config).
  returned: always
  type: dict
  sample: {postgresql: {parameters: {work_mem: 16MB}}}
config:
  description: The dynamic configuration afterwards (in check mode, as it would be).
  returned: always
  type: dict
pending_restart:
  description: Members that need a restart to apply the configuration.
  returned: always
  type: list
  elements: str
  sample: [node1, node2, node3]
'''

import copy
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.elephant.ha.plugins.module_utils.pg_ha_api import Api, api_argument_spec
from ansible_collections.elephant.ha.plugins.module_utils.pg_ha.config.defaults import DYNAMIC_DEFAULTS

TRUE_WORDS = ('on', 'true', 'yes', '1')
FALSE_WORDS = ('off', 'false', 'no', '0')


def same_value(want, have):
    if want == have and type(want) is type(have):
        return True
    if isinstance(want, (dict, list)) or isinstance(have, (dict, list)):
        return want == have
    if want is None or have is None:
        return False
    a, b = str(want).strip().lower(), str(have).strip().lower()
    if a == b:
        return True
    if isinstance(want, bool) or isinstance(have, bool):
        return (a in TRUE_WORDS and b in TRUE_WORDS) or (a in FALSE_WORDS and b in FALSE_WORDS)
    try:
        return float(a) == float(b)
    except ValueError:
        return False


def difference(want, have):
    """The part of ``want`` that ``have`` does not already have (None: remove the key)."""
    changes = {}
    for key, value in want.items():
        present = isinstance(have, dict) and key in have
        current = have.get(key) if present else None
        if value is None:
            if present:
                changes[key] = None
        elif isinstance(value, dict) and isinstance(current, dict):
            sub = difference(value, current)
            if sub:
                changes[key] = sub
        elif not present or not same_value(value, current):
            changes[key] = value
    return changes


def merged(have, changes):
    result = copy.deepcopy(have) if isinstance(have, dict) else {}
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def main():
    argument_spec = api_argument_spec()
    argument_spec.update(
        config=dict(type='dict', required=True),
        wait_timeout=dict(type='int', default=60),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    api = Api(module)
    before = api.get('get_config', 'GET /config')
    changes = difference(module.params['config'], before)
    after = merged(before, changes)
    result = dict(changed=bool(changes), changes=changes, config=after)
    if changes and module._diff:
        result['diff'] = dict(before=before, after=after)
    cluster = api.get('get_cluster', 'GET /cluster')
    result['pending_restart'] = [m['name'] for m in cluster.get('members', []) if m.get('pending_restart')]
    if not changes or module.check_mode:
        module.exit_json(**result)

    code, body = api.call('patch_config', changes)
    if code != 200:
        module.fail_json(msg='PATCH /config refused (HTTP %s): %s' % (code, body), **result)
    if isinstance(body, dict):
        result['config'] = body

    # Members apply the new configuration in their next HA cycle; parameters that need a
    # restart then show up as pending_restart. Watch for two cycles at most.
    loop_wait = after.get('loop_wait', DYNAMIC_DEFAULTS['loop_wait'])
    try:
        window = min(module.params['wait_timeout'], 2 * float(loop_wait) + 2)
    except (TypeError, ValueError):
        window = min(module.params['wait_timeout'], 2 * DYNAMIC_DEFAULTS['loop_wait'] + 2)
    deadline = time.monotonic() + max(0, window)
    names = [m['name'] for m in cluster.get('members', [])]
    pending = []
    while True:
        code, now = api.try_call('get_cluster')
        if code == 200 and isinstance(now, dict):
            pending = [m['name'] for m in now.get('members', []) if m.get('pending_restart')]
        if sorted(pending) == sorted(names) or time.monotonic() >= deadline:
            break
        time.sleep(1)
    result['pending_restart'] = pending
    module.exit_json(**result)


if __name__ == '__main__':
    main()
