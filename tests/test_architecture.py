"""The package layering that docs/architecture.md states: its table lists pycount's packages in
order, and every import in pycount (module level or inside a function) goes to the package
itself or to one listed above it. Measurement code (bench/) stays outside the product package,
reached only by the `pycount bench` command."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pycount"
DOC = ROOT / "docs" / "architecture.md"


def documented_order() -> list[str]:
    """The packages in the order of the architecture table's first column (`pycount/x/` or
    `pycount/x.py`)."""
    names = re.findall(r"^\| `pycount/([\w]+)(?:/|\.py)` \|", DOC.read_text(), re.M)
    assert names, f"{DOC}: no package table found"
    return names


def unit_of(path: Path) -> str:
    """The package a module of pycount belongs to: its subpackage, or the top-level module."""
    rel = path.relative_to(PACKAGE).with_suffix("").parts
    return rel[0]


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, first name under pycount) of every pycount import in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = ([f"{node.module}.{a.name}" for a in node.names] if node.module == "pycount"
                     else [node.module])
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "pycount" and len(parts) > 1:
                found.append((node.lineno, parts[1]))
    return found


def test_every_package_is_in_the_table_once():
    order = documented_order()
    assert len(order) == len(set(order)), order
    units = {unit_of(p) for p in PACKAGE.rglob("*.py")} - {"__init__", "__main__", "__version__"}
    assert units == set(order), (f"in pycount but not in {DOC.name}: {sorted(units - set(order))}; "
                                 f"in {DOC.name} but not in pycount: {sorted(set(order) - units)}")


def test_imports_go_up_the_table_only():
    order = documented_order()
    rank = {name: i for i, name in enumerate(order)}
    rank.update({"__version__": -1})            # the version string, imported by anything
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        me = unit_of(path)
        if me in ("__init__", "__main__", "__version__"):
            continue
        for line, other in imports_of(path):
            if other != me and rank.get(other, len(order)) >= rank[me]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports pycount.{other}")
    assert not wrong, "imports against docs/architecture.md's order:\n" + "\n".join(wrong)


def test_the_product_reaches_bench_only_through_its_command():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            mod = (node.module if isinstance(node, ast.ImportFrom) else
                   node.names[0].name if isinstance(node, ast.Import) else None)
            if mod and mod.split(".")[0] in ("bench", "tests", "tools"):
                found.append(str(path.relative_to(ROOT)))
    assert found == ["pycount/cli.py"], found


def test_the_checks_see_a_wrong_import(tmp_path):
    """The order check itself: a data module importing training breaks it."""
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from pycount.training import trainer\n")
    assert imports_of(bad) == [(2, "training")]
    order = documented_order()
    assert order.index("training") > order.index("data")


def documented_imports() -> dict[str, set[str]]:
    """Each package's "imports" column of the architecture table: the pycount packages it names
    (`data`, `inference.engines` -> inference, ...)."""
    rows = re.findall(r"^\| `pycount/([\w]+)(?:/|\.py)` \|[^|]*\|([^|]*)\|", DOC.read_text(), re.M)
    return {name: set(re.findall(r"`([a-z]+)[`.]", cell)) for name, cell in rows}


def test_the_table_names_what_each_package_imports():
    """The imports column says what a package uses, not only what it may: every pycount package
    a module imports is named in its row (the order test alone let the column drift); `errors`,
    the leaf every package raises from, goes unsaid, and the CLI's row says "everything"."""
    said = documented_imports()
    said.pop("cli")
    missing = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        me = unit_of(path)
        if me not in said:
            continue
        for _, other in imports_of(path):
            if other not in (me, "__version__", "errors") and other not in said[me]:
                missing.add(f"{me} imports {other} ({path.relative_to(ROOT)})")
    assert not missing, f"{DOC.name}'s imports column lacks:\n" + "\n".join(sorted(missing))
