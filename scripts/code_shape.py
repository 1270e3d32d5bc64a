"""Shape of the daemon package: largest files, function length p50/p90/max, and the places
that change the node's state (assignments to a NodeMemory field before the Executor owned it,
NodeState transitions through Executor._become after).

    python3 scripts/code_shape.py [PACKAGE_DIR]      (default plugins/module_utils/pg_ha)
"""
from __future__ import annotations

import ast
import statistics
import sys
from pathlib import Path

MEMORY_FIELDS = {"upstream", "unverified_primary_data", "primary_start_failed", "stopped_on_purpose", "fatal",
                 "bootstrap_failed_at"}


def state_writes(tree: ast.AST) -> int:
    count = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "_become":
            count += 1
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and target.attr in MEMORY_FIELDS and \
                        ast.unparse(target.value).endswith("memory"):
                    count += 1
    return count


def main(root: Path) -> None:
    sizes, lengths, writers = [], [], {}
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        tree = ast.parse(text)
        rel = path.relative_to(root).as_posix()
        sizes.append((len(text.splitlines()), rel))
        lengths += [n.end_lineno - n.lineno + 1 for n in ast.walk(tree)
                    if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        if (count := state_writes(tree)):
            writers[rel] = count
    sizes.sort(reverse=True)
    q = statistics.quantiles(lengths, n=10)
    print(f"files: {len(sizes)}, lines: {sum(lines for lines, _name in sizes)}; largest: "
          + ", ".join(f"{name} {lines}" for lines, name in sizes[:3]))
    print(f"functions: {len(lengths)}, length p50 {statistics.median(lengths):.0f}, p90 {q[8]:.0f}, "
          f"max {max(lengths)}")
    print(f"node state writes: {sum(writers.values())} in {len(writers)} files: "
          + ", ".join(f"{k} {v}" for k, v in writers.items()))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "plugins/module_utils/pg_ha"))
