#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_ha_switchover
short_description: Move the leader of a pg_ha cluster to another member
version_added: 0.1.0
description:
  - Asks the cluster for a switchover (C(POST /switchover)) and waits for the outcome, until the
    new leader runs and, with O(wait_replicas=true), the other members stream from it.
  - Idempotent. When O(candidate) already leads, nothing is done and C(changed=false).
  - Without O(candidate) the cluster picks the healthiest replica that may be promoted.
  - With O(scheduled_at) the switchover is only scheduled; a schedule that is already there
    for the same time and candidate is left alone.
author:
  - elephant.ha developers (@elephant-ha)
extends_documentation_fragment:
  - elephant.ha.pg_ha_api
attributes:
  check_mode:
    support: full
    description: Checks the request against the cluster and reports the change without making it.
  diff_mode:
    support: full
    description: Shows the leader before and after.
options:
  candidate:
    description:
      - Member that shall lead. Omit it to let the cluster pick a healthy replica.
    type: str
  leader:
    description:
      - The member expected to lead now. When another member leads, the module fails instead of
        moving the wrong leader (unless O(candidate) already leads, which is success).
    type: str
  scheduled_at:
    description:
      - Time of a scheduled switchover (ISO 8601 with a time zone, e.g. C(2030-01-01T03:00:00+00:00)).
    type: str
  wait_timeout:
    description:
      - Seconds the switchover may take, and then again to wait for the new leader and replicas.
    type: int
    default: 120
  wait_replicas:
    description:
      - After the switchover, also wait until every member that was healthy before runs again
        (the old leader as a replica).
    type: bool
    default: true
'''

EXAMPLES = r'''
- name: Make node2 the leader
  elephant.ha.pg_ha_switchover:
    api_username: pg_ha
    api_password: "{{ pg_ha_restapi_password }}"
    candidate: node2
  register: switch

- name: Hand the leadership to any healthy replica, but only if node1 still leads
  elephant.ha.pg_ha_switchover:
    api_username: pg_ha
    api_password: "{{ pg_ha_restapi_password }}"
    leader: node1

- name: Schedule a switchover to node3 for the maintenance window
  elephant.ha.pg_ha_switchover:
    api_username: pg_ha
    api_password: "{{ pg_ha_restapi_password }}"
    candidate: node3
    scheduled_at: "2030-01-01T03:00:00+00:00"
'''

RETURN = r'''
old_leader:
  description: Leader before the module ran.
  returned: always
  type: str
  sample: node1
new_leader:
  description: Leader afterwards (null in check mode without a candidate and for a scheduled switchover).
  returned: always
  type: str
  sample: node2
old_timeline:
  description: Timeline of the old leader.
  returned: always
  type: int
  sample: 1
timeline:
  description: Timeline of the new leader.
  returned: always
  type: int
  sample: 2
scheduled:
  description: Whether the switchover was only scheduled.
  returned: always
  type: bool
  sample: false
message:
  description: The REST API's answer to the switchover request.
  returned: when a switchover was requested
  type: str
  sample: Successfully switched over to "node2"
'''

from datetime import datetime

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.elephant.ha.plugins.module_utils.pg_ha_api import (
    HEALTHY_STATES,
    Api,
    api_argument_spec,
    leader_of,
    member_named,
    wait_until,
)


def parse_time(module, text):
    try:
        value = datetime.strptime(text.replace('Z', '+00:00').replace(' ', 'T'), '%Y-%m-%dT%H:%M:%S%z')
    except ValueError:
        try:
            value = datetime.strptime(text.replace('Z', '+00:00').replace(' ', 'T'), '%Y-%m-%dT%H:%M:%S.%f%z')
        except ValueError:
            module.fail_json(msg='scheduled_at: %r is not an ISO 8601 time with a time zone' % text)
    return value


def promotable(member):
    tags = member.get('tags') or {}
    return (member.get('role') not in ('leader', 'standby_leader') and member.get('state') in HEALTHY_STATES
            and not tags.get('nofailover') and str(tags.get('failover_priority', 1)) != '0')


def main():
    argument_spec = api_argument_spec()
    argument_spec.update(
        candidate=dict(type='str'),
        leader=dict(type='str'),
        scheduled_at=dict(type='str'),
        wait_timeout=dict(type='int', default=120),
        wait_replicas=dict(type='bool', default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    candidate = params['candidate']
    api = Api(module)
    cluster = api.get('get_cluster', 'GET /cluster')
    leader = leader_of(cluster)
    if leader is None:
        module.fail_json(msg='cluster %s has no leader: a switchover needs one (use a failover)' % cluster.get('scope'))
    result = dict(changed=False, old_leader=leader['name'], new_leader=leader['name'],
                  old_timeline=leader.get('timeline'), timeline=leader.get('timeline'), scheduled=False)

    if candidate and candidate == leader['name']:
        module.exit_json(**result)
    if params['leader'] and params['leader'] != leader['name']:
        module.fail_json(msg='%s leads, not %s as expected' % (leader['name'], params['leader']), **result)
    if candidate:
        member = member_named(cluster, candidate)
        if member is None:
            module.fail_json(msg='%s is not a member of cluster %s' % (candidate, cluster.get('scope')), **result)
        if not promotable(member):
            module.fail_json(msg='%s cannot take over: role %s, state %s, tags %s' % (
                candidate, member.get('role'), member.get('state'), member.get('tags') or {}), **result)
    elif not [m for m in cluster.get('members', []) if promotable(m)]:
        module.fail_json(msg='no healthy replica can take over from %s' % leader['name'], **result)

    scheduled_at = None
    if params['scheduled_at']:
        scheduled_at = parse_time(module, params['scheduled_at'])
        result['scheduled'] = True
        result['new_leader'] = None
        existing = cluster.get('scheduled_switchover') or {}
        if existing.get('at') and parse_time(module, existing['at']) == scheduled_at \
                and existing.get('to') == candidate:
            module.exit_json(**result)

    result['changed'] = True
    if module._diff:
        result['diff'] = dict(before={'leader': leader['name']},
                              after={'leader': candidate or '(a healthy replica)',
                                     'scheduled_at': params['scheduled_at']} if scheduled_at else
                              {'leader': candidate or '(a healthy replica)'})
    if module.check_mode:
        result['new_leader'] = candidate
        module.exit_json(**result)

    healthy_before = [m['name'] for m in cluster.get('members', []) if m.get('state') in HEALTHY_STATES]
    code, body = api.call('switchover', leader['name'], candidate,
                          scheduled_at=params['scheduled_at'] if scheduled_at else None,
                          timeout=params['wait_timeout'])
    result['message'] = body if isinstance(body, str) else str(body)
    if scheduled_at:
        if code not in (200, 202):
            module.fail_json(msg='switchover not scheduled (HTTP %s): %s' % (code, body), **result)
        module.exit_json(**result)
    if code != 200:
        module.fail_json(msg='switchover from %s refused or failed (HTTP %s): %s' % (leader['name'], code, body),
                         **result)

    # The outcome is known; wait until the cluster shows it (any member's API will do).
    apis = [api] + [api.for_member(m) for m in cluster.get('members', []) if m.get('api_url')]

    def settled():
        for one in apis:
            code, now = one.try_call('get_cluster')
            if code != 200 or not isinstance(now, dict):
                continue
            new = leader_of(now)
            if new is None or new['name'] == leader['name'] or new.get('state') != 'running':
                return None
            # The member key shows the new timeline one HA cycle after the promotion.
            old_timeline = leader.get('timeline')
            if isinstance(old_timeline, int) and not (isinstance(new.get('timeline'), int)
                                                      and new['timeline'] > old_timeline):
                return None
            if params['wait_replicas']:
                states = dict((m['name'], m.get('state')) for m in now.get('members', []))
                if any(states.get(name) not in HEALTHY_STATES for name in healthy_before):
                    return None
            return new
        return None

    new = wait_until(settled, params['wait_timeout'])
    if not new:
        module.fail_json(msg='switchover was accepted but the cluster did not settle within %ss' %
                         params['wait_timeout'], **result)
    result.update(new_leader=new['name'], timeline=new.get('timeline'))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
