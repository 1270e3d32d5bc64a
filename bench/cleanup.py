"""``python3 -m bench.cleanup REGISTRY``: end what a killed bench run left running."""
from __future__ import annotations

import sys
from pathlib import Path

from .registry import Registry


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python3 -m bench.cleanup REGISTRY", file=sys.stderr)
        return 2
    path = Path(argv[0])
    if not path.exists():
        return 0
    for what in Registry(path).cleanup():
        print(f"bench cleanup: ended {what}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
