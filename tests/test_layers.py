"""The house's shape, checked from the source: three processes over one process layer.

The web process (`ae.jobs`, pages), the training process (`ae.training`) and the map process
(`ae.maps`) talk only through their protocol modules; both services stand on `ae.ipc`; the
engine never imports Streamlit; and the ideas written once (the receive loop, the Stop rule,
the bounded cache) stay written once.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*ROOT.glob("ae/**/*.py"), *ROOT.glob("pages/*.py"), ROOT / "app.py"])
TRAINING_PUBLIC = {"ae.training.protocol", "ae.training.snapshot",  # what the web side may know of training
                   "ae.training.estimates"}  # arithmetic on measured runs, shared by both sides
MAPS_PUBLIC = {"ae.maps.protocol", "ae.maps.service", "ae.maps.files", "ae.maps.bounds"}  # the web side of maps


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function (`from a import b` counts
    `a` and, where it is a module, `a.b`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if (ROOT / node.module.replace(".", "/") / f"{alias.name}.py").exists())
    return found


GRAPH = {module_name(path): imports(path) for path in SOURCES}


def importers(prefix: str) -> dict[str, set[str]]:
    return {module: {name for name in names if name == prefix or name.startswith(prefix + ".")}
            for module, names in GRAPH.items()}


def test_the_engine_never_imports_streamlit():
    """The load client speaks Streamlit's wire protocol, so it alone reads its message classes."""
    offenders = [(module, name) for module, names in GRAPH.items() if module.startswith("ae")
                 for name in names if name.split(".")[0] == "streamlit"
                 and not (module == "ae.loadclient" and name.startswith("streamlit.proto"))]
    assert offenders == []


def test_both_services_stand_on_the_one_process_layer():
    for module in ("ae.jobs.backend", "ae.training.process", "ae.maps.service", "ae.maps.process"):
        assert "ae.ipc" in GRAPH[module], f"{module} does not use ae.ipc"


@pytest.mark.parametrize("service, others", [
    ("ae.training", ("ae.jobs", "ae.maps")),
    ("ae.maps", ("ae.jobs", "ae.training")),
])
def test_no_service_imports_another(service, others):
    for module, names in GRAPH.items():
        if module.startswith(service):
            crossing = [name for name in names if name.startswith(others)]
            assert crossing == [], f"{module} imports {crossing}"


# The cluster's backend names the service actor's class, which Ray then starts on the head node.
TRAINING_PUBLIC_TO = {"ae.jobs.ray_backend": {"ae.training.ray_service"}}


def test_the_web_side_knows_training_only_by_its_protocol():
    web_side = [module for module in GRAPH if module.startswith(("ae.jobs", "ae.display", "ae.analysis", "ae.maps",
                                                                 "pages", "app"))]
    for module in web_side:
        allowed = TRAINING_PUBLIC | TRAINING_PUBLIC_TO.get(module, set())
        training = {name for name in GRAPH[module] if name.startswith("ae.training")} - {"ae.training"}
        assert training <= allowed, f"{module} imports {training - allowed}"
        maps = {name for name in GRAPH[module] if name.startswith("ae.maps.")}
        if not module.startswith("ae.maps"):
            assert maps <= MAPS_PUBLIC, f"{module} imports {maps - MAPS_PUBLIC}"


SOURCE = {module_name(path): path.read_text() for path in SOURCES}


def modules_containing(text: str) -> list[str]:
    return sorted(module for module, source in SOURCE.items() if module.startswith("ae") and text in source)


def test_one_receive_loop_one_stop_rule_one_bounded_cache():
    assert modules_containing(".recv()") == ["ae.ipc"]
    assert modules_containing("OrderedDict") == ["ae.lru"]
    assert modules_containing("withdrawn") == ["ae.askers"]
    assert modules_containing("start_child(") == ["ae.ipc", "ae.jobs.backend", "ae.maps.service", "ae.training.slots"]


def test_the_training_service_stays_small_its_slots_load_keras():
    """The service (jobs, queue, slots) never loads TensorFlow: only a slot's worker does, so
    S slots cost S TensorFlows, not S + 1, and Ray stays unimported without an address."""
    import subprocess
    import sys

    code = ("import sys, ae.training.process, ae.training.slots, ae.jobs.backend; "
            "print(sorted(m for m in ('keras', 'tensorflow', 'ae.training.worker', 'ray') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
