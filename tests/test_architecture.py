"""The architecture of docs/architecture.md, checked: import layers, pure stage packages, no
command-line imports from the library, no imports inside functions, one home per public name, a
lazy top-level API and run-time shape checks."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import jax.numpy as jnp
import pytest
from jaxtyping import TypeCheckError

import cryoensemble
from cryoensemble.pose import quaternion_to_matrix

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "cryoensemble"

# Stage/kernel packages (below io): pure JAX, no plotting, terminal, YAML or command-line libraries.
STAGES = (
    "ensemble",
    "posesearch",
    "inference",
    "imaging",
    "projection",
    "optics",
    "noise",
    "scattering",
    "structure",
    "pose",
    "ndimage",
    "progress",
)
FORBIDDEN_IN_STAGES = {"matplotlib", "rich", "yaml", "typer", "pydantic"}
# Optional dependencies, the only imports allowed inside function bodies (outside the CLI).
OPTIONAL = {"openmm", "pdbfixer", "mdtraj"}
# The workflow interface: names each workflow package defines on purpose (one per workflow).
SHARED_INTERFACE = {"run", "load_config", "summary_lines", "write_outputs"}


def _modules() -> list[tuple[str, Path]]:
    """(dotted name, path) of every module of the package."""
    out = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((name, path))
    return out


def _in_package(module: str, package: str) -> bool:
    return module == f"cryoensemble.{package}" or module.startswith(f"cryoensemble.{package}.")


def _imported(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    """Absolute names imported by ``node`` in ``module``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level == 0:
        return [node.module or ""]
    base = module.split(".")
    if not Path(str(SRC.parent / Path(*base)) + "/__init__.py").exists():
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return [".".join([*base, node.module] if node.module else base)]


def _all_imports(tree: ast.AST, module: str) -> list[tuple[int, str]]:
    return [
        (node.lineno, name)
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in _imported(node, module)
    ]


def _parse(path: Path) -> ast.AST:
    return ast.parse(path.read_text(), filename=str(path))


def test_import_layers():
    """The import-linter contracts of pyproject.toml (the layer diagram) hold."""
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.skip("import-linter is not installed")
    proc = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_library_never_imports_the_command_line():
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for module, path in _modules()
        if not _in_package(module, "cli")
        for line, name in _all_imports(_parse(path), module)
        if name == "cryoensemble.cli" or name.startswith("cryoensemble.cli.")
    ]
    assert not bad, "\n".join(bad)


def test_stage_packages_are_pure():
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for module, path in _modules()
        if any(_in_package(module, stage) for stage in STAGES)
        for line, name in _all_imports(_parse(path), module)
        if name.split(".")[0] in FORBIDDEN_IN_STAGES
    ]
    assert not bad, "\n".join(bad)


# Calls that write files: methods and functions by name, and ``open`` in a writing mode.
WRITERS = {"write_text", "write_bytes", "savefig", "to_csv", "save", "savez", "savez_compressed"}
WRITERS |= {
    "savetxt",
    "mkdir",
    "new",
    "new_mmap",
    "write_map",
    "write_particles",
    "atomic_output_file",
}


def _writes(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if name in WRITERS:
        return True
    if name == "open":
        modes = [a.value for a in node.args[1:2] if isinstance(a, ast.Constant)]
        modes += [
            k.value.value
            for k in node.keywords
            if k.arg == "mode" and isinstance(k.value, ast.Constant)
        ]
        return any(isinstance(m, str) and set(m) & set("wax+") for m in modes)
    return False


def test_stage_packages_write_no_files():
    """Stages compute; workflows and io write (``structure`` owns coordinate files)."""
    bad = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for module, path in _modules()
        if any(_in_package(module, stage) for stage in STAGES if stage != "structure")
        for node in ast.walk(_parse(path))
        if isinstance(node, ast.Call) and _writes(node)
    ]
    assert not bad, "file writes in stage packages:\n" + "\n".join(bad)


def _function_body_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found = []
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            found += [n for n in ast.walk(fn) if isinstance(n, ast.Import | ast.ImportFrom)]
    return list({id(n): n for n in found}.values())


def _has_comment(lines: list[str], lineno: int) -> bool:
    """A comment on the import's line or on the line above it (saying why it is deferred)."""
    here = lines[lineno - 1]
    above = lines[lineno - 2].strip() if lineno >= 2 else ""
    return "#" in here or above.startswith("#")


def test_no_imports_inside_functions():
    """Outside the CLI, only optional dependencies are imported in function bodies, with a
    comment saying why (the CLI imports workflows lazily to keep ``--help`` fast)."""
    bad = []
    for module, path in _modules():
        if _in_package(module, "cli"):
            continue
        lines = path.read_text().splitlines()
        for node in _function_body_imports(_parse(path)):
            names = _imported(node, module)
            optional = all(name.split(".")[0] in OPTIONAL for name in names)
            if not (optional and _has_comment(lines, node.lineno)):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {', '.join(names)}")
    assert not bad, f"{len(bad)} imports inside functions:\n" + "\n".join(bad)


def _public_names(module) -> set[str]:
    """``__all__``, or the public non-module names defined in (or re-exported by) the package."""
    if hasattr(module, "__all__"):
        return set(module.__all__)
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_") or name == "annotations" or isinstance(value, type(sys)):
            continue
        home = getattr(value, "__module__", None)
        if home is None or home.startswith("cryoensemble"):
            names.add(name)
    return names


def _packages() -> list[str]:
    """Every package and public top-level module below ``cryoensemble`` except the CLI."""
    out = []
    for info in pkgutil.walk_packages(cryoensemble.__path__, "cryoensemble."):
        leaf = info.name.rsplit(".", 1)[-1]
        if leaf.startswith("_") or _in_package(info.name, "cli"):
            continue
        if info.ispkg or info.name.count(".") == 1:
            out.append(info.name)
    return out


def test_one_home_per_name():
    """No public name is exported from two packages (the top level's re-exports excepted)."""
    homes: dict[str, list[str]] = defaultdict(list)
    for package in _packages():
        module = importlib.import_module(package)
        for name in _public_names(module):
            homes[name].append(package)
    dupes = {
        name: pkgs
        for name, pkgs in sorted(homes.items())
        if len(pkgs) > 1
        and not (name in SHARED_INTERFACE and all(_in_package(p, "workflows") for p in pkgs))
    }
    assert not dupes, "\n".join(f"{name}: {', '.join(pkgs)}" for name, pkgs in dupes.items())


def test_top_level_api_is_lazy_and_complete():
    code = (
        "import sys, cryoensemble\n"
        "assert 'jax' not in sys.modules, 'import cryoensemble imported jax'\n"
        "missing = [n for n in cryoensemble.__all__ if not hasattr(cryoensemble, n)]\n"
        "assert not missing, missing\n"
        "assert set(cryoensemble.__all__) <= set(dir(cryoensemble))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for name in ("read_structure", "simulate_images", "ImagingConfig", "fit_weights_em"):
        assert name in cryoensemble.__all__


@pytest.mark.parametrize(
    "workflow", ["simulate", "render", "reweight", "optimize", "poses", "demo"]
)
def test_each_workflow_has_a_run_function(workflow):
    module = importlib.import_module(f"cryoensemble.workflows.{workflow}")
    assert callable(module.run)


def test_shapes_are_checked_at_test_time(request):
    """``--jaxtyping-packages`` (pytest addopts) makes a wrong shape a type-check error."""
    if not request.config.getoption("jaxtyping_packages"):
        pytest.skip("run without --jaxtyping-packages")
    assert quaternion_to_matrix(jnp.ones((5, 4))).shape == (5, 3, 3)
    with pytest.raises(TypeCheckError):
        quaternion_to_matrix(jnp.ones((5, 3)))
