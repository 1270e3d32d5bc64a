#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_ha_info
short_description: Read the state of a pg_ha (or Patroni) cluster
version_added: 0.1.0
description:
  - Reads C(GET /cluster), C(GET /config) and C(GET /patroni) from one member's REST API and
    returns the members, their roles, states, lag and timelines, the leader, the members with a
    pending restart and whether the cluster is paused.
  - Register the result to use it, or read the same data from the fact C(pg_ha) (C(ansible_facts.pg_ha)) that the
    module also sets on the host it ran for, e.g. C(ansible_facts.pg_ha.leader).
author:
  - elephant.ha developers (@elephant-ha)
extends_documentation_fragment:
  - elephant.ha.pg_ha_api
attributes:
  check_mode:
    support: full
    description: The module only reads.
  diff_mode:
    support: none
    description: The module changes nothing.
options:
  gather_config:
    description:
      - Also read the dynamic configuration (C(GET /config)).
    type: bool
    default: true
'''

EXAMPLES = r'''
- name: Read the cluster
  elephant.ha.pg_ha_info:
    api_url: http://127.0.0.1:8008
  register: cluster

- name: Show the leader
  ansible.builtin.debug:
    msg: "{{ cluster.leader }} leads timeline {{ cluster.timeline }}; replicas {{ cluster.replicas | join(', ') }}"

- name: Read the cluster into the fact pg_ha
  elephant.ha.pg_ha_info:
    gather_config: false

- name: Use the fact
  ansible.builtin.debug:
    msg: "{{ ansible_facts.pg_ha.leader }} leads; paused: {{ ansible_facts.pg_ha.paused }}"

- name: Wait until two replicas stream
  elephant.ha.pg_ha_info:
  register: cluster
  until: cluster.members | selectattr('state', 'equalto', 'streaming') | list | length == 2
  retries: 30
  delay: 2
'''

RETURN = r'''
scope:
  description: Cluster name.
  returned: always
  type: str
  sample: main
leader:
  description: Name of the leader, null when the cluster has none.
  returned: always
  type: str
  sample: node1
replicas:
  description: Names of the members that are not the leader.
  returned: always
  type: list
  elements: str
  sample: [node2, node3]
timeline:
  description: Timeline of the leader (null while there is no leader).
  returned: always
  type: int
  sample: 2
members:
  description: Members as C(GET /cluster) lists them (Patroni's fields).
  returned: always
  type: list
  elements: dict
  sample:
    - {name: node1, role: leader, state: running, host: 10.0.0.11, port: 5432, timeline: 2,
       api_url: "http://10.0.0.11:8008/patroni"}
    - {name: node2, role: replica, state: streaming, host: 10.0.0.12, port: 5432, timeline: 2, lag: 0, lsn: "0/5000148"}
lag:
  description: Replication lag in bytes of each replica (V(unknown) when not known).
  returned: always
  type: dict
  sample: {node2: 0, node3: 0}
pending_restart:
  description: Names of the members that need a restart to apply a parameter.
  returned: always
  type: list
  elements: str
  sample: [node2]
paused:
  description: Whether automatic failover is paused (maintenance mode).
  returned: always
  type: bool
  sample: false
scheduled_switchover:
  description: The scheduled switchover (C(at), C(from), C(to)), if any.
  returned: when one is scheduled
  type: dict
config:
  description: The dynamic configuration.
  returned: when O(gather_config=true)
  type: dict
  sample: {ttl: 30, loop_wait: 10, postgresql: {parameters: {max_connections: 100}}}
local:
  description: The status of the member at O(api_url) (C(GET /patroni)).
  returned: always
  type: dict
ansible_facts:
  description: The same data as facts.
  returned: always
  type: dict
  contains:
    pg_ha:
      description:
        - Every value above (scope, leader, replicas, timeline, members, lag, pending_restart, paused,
          scheduled_switchover, config, local) under one fact, C(ansible_facts.pg_ha) or C(pg_ha) in templates.
      returned: always
      type: dict
      sample: {scope: main, leader: node1, replicas: [node2, node3], timeline: 2, paused: false, pending_restart: []}
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.elephant.ha.plugins.module_utils.pg_ha_api import Api, api_argument_spec, leader_of


def cluster_summary(cluster):
    members = cluster.get('members', [])
    leader = leader_of(cluster)
    summary = dict(
        scope=cluster.get('scope'),
        leader=leader['name'] if leader else None,
        replicas=[m['name'] for m in members if leader is None or m['name'] != leader['name']],
        timeline=leader.get('timeline') if leader else None,
        members=members,
        lag=dict((m['name'], m['lag']) for m in members if 'lag' in m),
        pending_restart=[m['name'] for m in members if m.get('pending_restart')],
        paused=bool(cluster.get('pause', False)),
    )
    if cluster.get('scheduled_switchover'):
        summary['scheduled_switchover'] = cluster['scheduled_switchover']
    return summary


def main():
    argument_spec = api_argument_spec()
    argument_spec.update(gather_config=dict(type='bool', default=True))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    api = Api(module)
    result = dict(changed=False)
    result.update(cluster_summary(api.get('get_cluster', 'GET /cluster')))
    if module.params['gather_config']:
        result['config'] = api.get('get_config', 'GET /config')
    status, body = api.call('get_status')
    result['local'] = body if isinstance(body, dict) else {'status': status, 'body': body}
    facts = dict((key, value) for key, value in result.items() if key != 'changed')
    module.exit_json(ansible_facts=dict(pg_ha=facts), **result)


if __name__ == '__main__':
    main()
