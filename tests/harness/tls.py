"""A throw-away certificate authority made with the openssl CLI: a CA, a server certificate for
127.0.0.1/localhost and client certificates, as PEM files in one directory."""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

KEY_OPTS = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


class TestCA:
    __test__ = False  # not a pytest class

    def __init__(self, directory: Path, name: str = "ca", owner: str | None = None) -> None:
        self.dir = directory
        self.owner = owner
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cert = directory / f"{name}.crt"
        self.key = directory / f"{name}.key"
        _openssl("req", "-x509", *KEY_OPTS, "-keyout", self.key.name, "-out", self.cert.name, "-days", "2",
                 "-subj", f"/CN=pg_ha test {name}", cwd=directory)
        self._own(self.cert, self.key)

    def _own(self, *paths: Path) -> None:
        for path in paths:
            path.chmod(0o600 if path.suffix == ".key" else 0o644)
            if self.owner:
                shutil.chown(path, self.owner, self.owner)

    def issue(self, name: str, client: bool = False) -> Pair:
        """A certificate signed by this CA: server (SAN 127.0.0.1, localhost) or client."""
        key, csr, cert, ext = (self.dir / f"{name}.{s}" for s in ("key", "csr", "crt", "ext"))
        usage = "clientAuth" if client else "serverAuth,clientAuth"  # members also ask each other
        ext.write_text(f"subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\n")
        _openssl("req", *KEY_OPTS, "-keyout", key.name, "-out", csr.name, "-subj", f"/CN={name}", cwd=self.dir)
        _openssl("x509", "-req", "-in", csr.name, "-CA", self.cert.name, "-CAkey", self.key.name,
                 "-CAcreateserial", "-out", cert.name, "-days", "2", "-extfile", ext.name, cwd=self.dir)
        self._own(cert, key)
        return Pair(cert, key)
