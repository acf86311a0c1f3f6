#!/usr/bin/env python3
"""The import graph of a crate's top-level modules, and its cycles.

Usage: scripts/module-graph.py [SRC_DIR] [--check]

Prints each module's imports, then every strongly connected component of more than one
module (an import cycle). With --check it exits 1 when there is a cycle, so CI keeps the
layering of the controller from eroding.
"""
import re
import sys
from pathlib import Path

def top_module(src: Path, path: Path) -> str:
    rel = path.relative_to(src)
    first = rel.parts[0]
    return first[:-3] if first.endswith(".rs") else first

def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)

def imports(text: str):
    found = set()
    for group in re.finditer(r"crate::\{([^;]*?)\}\s*;", text, flags=re.S):
        depth, item = 0, ""
        for ch in group.group(1) + ",":
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                name = re.match(r"\s*(\w+)", item)
                if name:
                    found.add(name.group(1))
                item = ""
            else:
                item += ch
    for m in re.finditer(r"crate::(\w+)", text):
        found.add(m.group(1))
    return found

def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    check = "--check" in sys.argv
    src = Path(args[0] if args else "controller/src")
    modules = {}
    for path in sorted(src.rglob("*.rs")):
        rel = path.relative_to(src)
        if rel.parts[0] in ("bin", "lib.rs", "main.rs"):
            continue
        modules.setdefault(top_module(src, path), set())
    for path in sorted(src.rglob("*.rs")):
        rel = path.relative_to(src)
        if rel.parts[0] in ("bin", "lib.rs", "main.rs"):
            continue
        me = top_module(src, path)
        for name in imports(strip_comments(path.read_text())):
            if name in modules and name != me:
                modules[me].add(name)
    # Tarjan's strongly connected components.
    index, low, on_stack, stack, sccs = {}, {}, set(), [], []
    counter = [0]
    sys.setrecursionlimit(10000)
    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(modules[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            sccs.append(sorted(comp))
    for v in sorted(modules):
        if v not in index:
            visit(v)
    for name in sorted(modules):
        print(f"{name}: {', '.join(sorted(modules[name])) or '-'}")
    cycles = [c for c in sccs if len(c) > 1]
    print(f"modules: {len(modules)}, edges: {sum(len(v) for v in modules.values())}, "
          f"modules in cycles: {sum(len(c) for c in cycles)}")
    for c in cycles:
        print("cycle:", " <-> ".join(c))
    return 1 if (check and cycles) else 0

if __name__ == "__main__":
    sys.exit(main())
