# -*- coding: utf-8 -*-
# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # Connection options of every module that talks to the pg_ha REST API.
    DOCUMENTATION = r'''
options:
  api_url:
    description:
      - Base URL of the REST API of one member of the cluster (Patroni's API is accepted too).
      - The module usually runs on a database host and talks to the local daemon.
    type: str
    default: http://127.0.0.1:8008
  api_username:
    description:
      - User of the REST API's basic authentication (C(restapi.authentication.username)).
      - Needed for the endpoints that change state.
    type: str
  api_password:
    description:
      - Password of O(api_username).
    type: str
  ca_file:
    description:
      - CA certificate file that signs the REST API's certificate (https only).
    type: path
  client_cert:
    description:
      - Client certificate file, when the REST API verifies clients.
    type: path
  client_key:
    description:
      - Private key of O(client_cert).
    type: path
  validate_certs:
    description:
      - Verify the REST API's certificate (https only).
    type: bool
    default: true
  timeout:
    description:
      - Seconds one HTTP request may take.
    type: float
    default: 10
'''
