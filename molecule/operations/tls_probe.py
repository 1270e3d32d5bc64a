# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One request to a pg_ha REST API from a molecule host, printed as one JSON line:
{"status": HTTP status or null, "error": why no answer came or null, "body": text}.

  tls_probe.py METHOD URL [--ca FILE] [--cert FILE --key FILE]

--ca verifies the server with that CA (without it: the system CAs); --cert/--key present a
client certificate. Basic-auth credentials come from the environment (PROBE_AUTH=user:password),
never from the command line.
"""
import argparse
import base64
import http.client
import json
import os
import ssl
import sys
from urllib.parse import urlsplit


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("method")
    parser.add_argument("url")
    parser.add_argument("--ca")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    parts = urlsplit(args.url)
    headers = {"Connection": "close"}
    auth = os.environ.get("PROBE_AUTH")
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=args.ca)
        if args.cert:
            context.load_cert_chain(args.cert, args.key)
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=10, context=context)
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    result = {"status": None, "error": None, "body": ""}
    try:
        conn.request(args.method, parts.path or "/", headers=headers)
        response = conn.getresponse()
        result["status"] = response.status
        result["body"] = response.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
