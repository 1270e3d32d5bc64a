#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_ha_member
short_description: Restart, reload or reinitialize one member of a pg_ha cluster
version_added: 0.1.0
description:
  - Acts on one member through its REST API (C(POST /restart), C(POST /reload),
    C(POST /reinitialize)) and waits until the member runs again.
  - With O(pending_restart_only=true) a member without a pending restart is left alone
    (C(changed=false)).
author:
  - elephant.ha developers (@elephant-ha)
extends_documentation_fragment:
  - elephant.ha.pg_ha_api
attributes:
  check_mode:
    support: full
    description: Reports what would be done and does nothing.
  diff_mode:
    support: none
    description: There is no configuration to compare.
options:
  member:
    description:
      - Name of the member to act on; its REST API address comes from C(GET /cluster) at O(api_url).
      - Default is the member at O(api_url).
    type: str
  state:
    description:
      - V(restarted) restarts PostgreSQL on the member (the daemon keeps running).
      - V(reloaded) makes the daemon re-read its configuration file and reload PostgreSQL.
      - V(reinitialized) wipes a replica's data directory and clones it again from the leader.
    type: str
    required: true
    choices: [restarted, reloaded, reinitialized]
  pending_restart_only:
    description:
      - With O(state=restarted), restart only when the member reports a pending restart.
    type: bool
    default: false
  force:
    description:
      - With O(state=reinitialized), cancel a running operation of the member first.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait until the member runs again (C(running) or C(streaming)); V(0) does not wait.
    type: int
    default: 300
'''

EXAMPLES = r'''
- name: Restart the local member when a parameter asks for it
  elephant.ha.pg_ha_member:
    api_username: pg_ha
    api_password: "{{ pg_ha_restapi_password }}"
    state: restarted
    pending_restart_only: true

- name: Clone node3 again from the leader
  elephant.ha.pg_ha_member:
    api_username: pg_ha
    api_password: "{{ pg_ha_restapi_password }}"
    member: node3
    state: reinitialized
'''

RETURN = r'''
member:
  description: Name of the member acted on.
  returned: always
  type: str
  sample: node2
role:
  description: Role of the member afterwards.
  returned: always
  type: str
  sample: replica
state:
  description: State of the member afterwards (C(running), C(streaming), ...).
  returned: always
  type: str
  sample: streaming
message:
  description: The REST API's answer.
  returned: when the member was acted on
  type: str
  sample: restarted successfully
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.elephant.ha.plugins.module_utils.pg_ha_api import (
    HEALTHY_STATES,
    Api,
    api_argument_spec,
    member_named,
    wait_until,
)

CALLS = {'restarted': 'restart', 'reloaded': 'reload', 'reinitialized': 'reinitialize'}


def main():
    argument_spec = api_argument_spec()
    argument_spec.update(
        member=dict(type='str'),
        state=dict(type='str', required=True, choices=list(CALLS)),
        pending_restart_only=dict(type='bool', default=False),
        force=dict(type='bool', default=False),
        wait_timeout=dict(type='int', default=300),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    api = Api(module)
    name = params['member']
    if name:
        cluster = api.get('get_cluster', 'GET /cluster')
        member = member_named(cluster, name)
        if member is None:
            module.fail_json(msg='%s is not a member of cluster %s (members: %s)' % (
                name, cluster.get('scope'), ', '.join(m['name'] for m in cluster.get('members', []))))
        api = api.for_member(member)
    status = api.get('get_status', 'GET /patroni')
    name = status.get('patroni', {}).get('name', name)
    result = dict(changed=False, member=name, role=status.get('role'), state=status.get('state'))
    state = params['state']

    if state == 'restarted' and params['pending_restart_only'] and not status.get('pending_restart'):
        module.exit_json(**result)
    if module.check_mode:
        result['changed'] = True
        module.exit_json(**result)

    if state == 'restarted':
        code, body = api.call('restart', restart_pending=params['pending_restart_only'],
                              timeout=params['wait_timeout'] or None)
    elif state == 'reinitialized':
        code, body = api.call('reinitialize', force=params['force'])
    else:
        code, body = api.call('reload')
    result['message'] = body if isinstance(body, str) else str(body)
    if code not in (200, 202):
        module.fail_json(msg='%s of %s refused (HTTP %s): %s' % (CALLS[state], name, code, body), **result)
    result['changed'] = True

    if params['wait_timeout'] > 0 and state != 'reloaded':
        started = status.get('postmaster_start_time')

        def healthy():
            code, body = api.try_call('get_status')
            if code != 200 or not isinstance(body, dict) or body.get('state') not in HEALTHY_STATES:
                return None
            # A new postmaster: the restart or the new clone has happened, not just been asked for.
            if started and body.get('postmaster_start_time') == started:
                return None
            return body
        body = wait_until(healthy, params['wait_timeout'])
        if not body:
            module.fail_json(msg='%s of %s: the member did not run again within %ss' % (
                CALLS[state], name, params['wait_timeout']), **result)
        result.update(role=body.get('role'), state=body.get('state'))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
