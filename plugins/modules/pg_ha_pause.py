#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_ha_pause
short_description: Pause or resume automatic failover of a pg_ha cluster
version_added: 0.1.0
description:
  - Sets C(pause) in the cluster's dynamic configuration (C(PATCH /config)), as C(pg_hactl pause)
    and C(pg_hactl resume) do. While paused the daemons neither fail over nor start or stop
    PostgreSQL (maintenance mode).
  - With O(wait=true) waits until every member reports the new mode on its own REST API.
author:
  - elephant.ha developers (@elephant-ha)
extends_documentation_fragment:
  - elephant.ha.pg_ha_api
attributes:
  check_mode:
    support: full
    description: Reports the change without making it.
  diff_mode:
    support: full
    description: Shows the mode before and after.
options:
  state:
    description:
      - V(paused) turns automatic failover off, V(resumed) on again.
    type: str
    required: true
    choices: [paused, resumed]
  wait:
    description:
      - Wait until every member reports the mode.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait with O(wait=true).
    type: int
    default: 60
'''

EXAMPLES = r'''
- name: Maintenance mode
  elephant.ha.pg_ha_pause:
    api_username: pg_ha
    api_password: "{{ pg_ha_restapi_password }}"
    state: paused

- name: Automatic failover again
  elephant.ha.pg_ha_pause:
    api_username: pg_ha
    api_password: "{{ pg_ha_restapi_password }}"
    state: resumed
'''

RETURN = r'''
paused:
  description: Whether the cluster is paused afterwards.
  returned: always
  type: bool
  sample: true
members:
  description: Members and whether each one reports the pause (after waiting).
  returned: always
  type: dict
  sample: {node1: true, node2: true, node3: true}
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.elephant.ha.plugins.module_utils.pg_ha_api import Api, api_argument_spec, wait_until


def main():
    argument_spec = api_argument_spec()
    argument_spec.update(
        state=dict(type='str', required=True, choices=['paused', 'resumed']),
        wait=dict(type='bool', default=True),
        wait_timeout=dict(type='int', default=60),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    want = module.params['state'] == 'paused'
    api = Api(module)
    cluster = api.get('get_cluster', 'GET /cluster')
    members = [m for m in cluster.get('members', []) if m.get('api_url')]
    apis = dict((m['name'], api.for_member(m)) for m in members)

    def reports():
        seen = {}
        for name, one in apis.items():
            code, body = one.try_call('get_status')
            seen[name] = bool(isinstance(body, dict) and body.get('pause', False))
        return seen

    paused = bool(cluster.get('pause', False))
    result = dict(changed=paused != want, paused=want if module.check_mode else paused)
    if result['changed'] and module._diff:
        result['diff'] = dict(before={'pause': paused}, after={'pause': want})
    if result['changed'] and not module.check_mode:
        code, body = api.call('patch_config', {'pause': want})
        if code != 200:
            module.fail_json(msg='PATCH /config refused (HTTP %s): %s' % (code, body), **result)
        result['paused'] = want
    if module.check_mode or not module.params['wait']:
        result['members'] = reports() if not module.check_mode else dict((n, paused) for n in apis)
        module.exit_json(**result)

    state = {}

    def everyone():
        state.update(reports())
        return all(value == want for value in state.values())

    if not wait_until(everyone, module.params['wait_timeout']):
        module.fail_json(msg='not every member reports %s within %ss'
                         % (module.params['state'], module.params['wait_timeout']),
                         members=state, **result)
    result['members'] = state
    module.exit_json(**result)


if __name__ == '__main__':
    main()
