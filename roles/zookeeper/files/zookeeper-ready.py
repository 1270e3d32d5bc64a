# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait until the local ZooKeeper server serves: `srvr` names its mode (leader, follower or
standalone), which it does only as a member of a working quorum. Prints the mode; exits 1 with
the last answer after --timeout seconds. Stdlib only (the unit's ExecStartPost and the role).
With --cafile and --certfile (a PEM file with the key and the certificate) it asks over TLS, as
a server with zookeeper_tls_enabled answers only there; the server's certificate is checked
against the CA, not its name (this asks the local server by its loopback address)."""
import argparse
import socket
import ssl
import sys
import time

SERVING = ("leader", "follower", "standalone")


def four_letter(host, port, word, timeout, tls=None):
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock = tls.wrap_socket(raw) if tls else raw
        sock.sendall(word.encode())
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def mode_of(answer):
    for line in answer.splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2181)
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--cafile", help="CA of the server's certificate: ask over TLS")
    parser.add_argument("--certfile", help="client key and certificate (PEM) for --cafile")
    args = parser.parse_args()
    tls = None
    if args.cafile:
        tls = ssl.create_default_context(cafile=args.cafile)
        tls.check_hostname = False
        if args.certfile:
            tls.load_cert_chain(args.certfile)
    deadline = time.monotonic() + args.timeout
    last = "no answer"
    while True:
        try:
            answer = four_letter(args.host, args.port, "srvr", 2, tls)
            mode = mode_of(answer)
            if mode in SERVING:
                print(mode)
                return 0
            last = answer.strip() or "empty answer"
        except OSError as exc:
            last = str(exc)
        if time.monotonic() >= deadline:
            print(f"zookeeper on {args.host}:{args.port} does not serve after {args.timeout:g} s: {last}",
                  file=sys.stderr)
            return 1
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
