# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pack the daemon's *.py files into a reproducible tar (same sources -> same bytes).

Usage: pack_pg_ha.py SOURCE_DIR OUTPUT.tar
Members are sorted, owned by root, mode 0644 (directories 0755), with mtime 0, so the copy
of the tar to a host reports a change only when a source file changed.
"""
import io
import os
import sys
import tarfile


def main(source, output):
    files = []
    for root, dirs, names in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        files.extend(os.path.join(root, n) for n in names if n.endswith(".py"))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path in sorted(files):
            name = "pg_ha/" + os.path.relpath(path, source)
            with open(path, "rb") as handle:
                data = handle.read()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    with open(output, "wb") as handle:
        handle.write(buffer.getvalue())
    print(f"{len(files)} files")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
