"""The package's import graph has no cycle, lazy (in-function) imports included: a cycle is two modules
that cannot be read, tested or replaced one without the other."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "scraper"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            for target in targets:
                if target in modules and target != name and not name.startswith(f"{target}."):
                    graph[name].add(target)  # (a package's own __init__ is not a cycle)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "scraper.scheduler" in graph["scraper.distributed.scheduler"]  # (the graph is read)
    assert cycles(graph) == []


def test_a_cycle_is_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_a_crawl_without_redis_imports_no_redis_client_faker_or_pyarrow_dataset() -> None:
    """Every component the project's settings name, every command (Scrapy imports them all to list
    them) and every spider: none imports what only Redis mode, Faker's provider or reading a dataset
    needs (together ~200 ms of every start)."""
    code = """
import importlib, pkgutil, sys
from scrapy.utils.misc import load_object
import scraper.commands, scraper.spiders, scraper.settings as s
paths = [*s.EXTENSIONS, *s.DOWNLOADER_MIDDLEWARES, *s.SPIDER_MIDDLEWARES, *s.ITEM_PIPELINES,
         *s.DOWNLOAD_HANDLERS.values(), *s.ADDONS, s.DOWNLOADER, *s.FAKEUSERAGENT_PROVIDERS]
for path in paths:
    if path.startswith("scraper."):
        load_object(path)
for package in (scraper.commands, scraper.spiders):
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
load_object(load_object("scraper.addon.LOCAL_SCHEDULER"))
heavy = ("redis", "scrapy_redis", "faker", "pyarrow.dataset", "scraper.distributed.")
print(sorted(m for m in sys.modules if m.startswith(heavy)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout
    assert out.strip() == "[]"
