# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Requests to pg_ha REST APIs from a molecule host, one process for several of them.

  tls_probe.py 'METHOD URL [ca=FILE] [cert=FILE] [key=FILE] [auth]' ...

Prints one JSON list, an object per request: {"status": HTTP status or null, "error": why no
answer came or null, "body": text}. ca= verifies the server with that CA (without it: the
system CAs); cert=/key= present a client certificate; auth sends the basic-auth credentials
of the environment (PROBE_AUTH=user:password), never given on the command line.
"""
import base64
import http.client
import json
import os
import ssl
import sys
from urllib.parse import urlsplit


def probe(spec):
    words = spec.split()
    method, url = words[0], words[1]
    options = dict(w.split("=", 1) for w in words[2:] if "=" in w)
    parts = urlsplit(url)
    headers = {"Connection": "close"}
    if "auth" in words[2:]:
        headers["Authorization"] = "Basic " + base64.b64encode(os.environ["PROBE_AUTH"].encode()).decode()
    result = {"status": None, "error": None, "body": ""}
    try:
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=options.get("ca"))
            if options.get("cert"):
                context.load_cert_chain(options["cert"], options.get("key"))
            conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=10, context=context)
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        try:
            conn.request(method, parts.path or "/", headers=headers)
            response = conn.getresponse()
            result["status"] = response.status
            result["body"] = response.read().decode("utf-8", "replace")
        finally:
            conn.close()
    except (OSError, http.client.HTTPException) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    return result


def main():
    json.dump([probe(spec) for spec in sys.argv[1:]], sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
