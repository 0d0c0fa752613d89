"""The layers of the code hold: the import contracts of pyproject.toml pass, they catch a web app that
reaches into the nightly job, and each Beanstalk bundle holds exactly the packages its app imports."""

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
PACKAGES = CONFIG["root_packages"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
sys.path.insert(0, str(ROOT / "deploy"))
import bundle  # noqa: E402


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache"], cwd=tree, capture_output=True, text=True, timeout=120
    )


def copy_of_the_code(tmp_path: Path) -> Path:
    """The Python files of every package and the contracts, in a scratch tree we may break."""
    tree = tmp_path / "tree"
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__", "*.keras")
        )
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_every_package_is_under_a_contract_and_the_contracts_hold():
    top_level = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()} - {"tests"}
    assert top_level == set(PACKAGES)  # a new package must be placed in the layers
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "BROKEN" not in result.stdout and "KEPT" in result.stdout


@pytest.mark.parametrize(
    ("module", "imported", "contract"),
    [
        ("flask_back_end/api.py", "etl.store_sensor_info", "The web apps import only the core"),
        ("flask_front_end/pages.py", "detection.rules", "The web apps import only the core"),
        ("etl/runner.py", "devtools.simulator.network", "Nothing in production imports the development"),
        ("etl/detect_anomalies.py", "etl.store_sensor_info", "The steps never import each other"),
        ("core/schema.py", "etl.settings", "Layers"),
        ("etl/loaders.py", "etl.extract_all_grow_data", "Inside etl"),
        ("etl/runs.py", "etl.runner", "Inside etl"),
    ],
)
def test_the_contracts_catch_an_import_across_the_layers(tmp_path, module, imported, contract):
    tree = copy_of_the_code(tmp_path)
    path = tree / module
    path.write_text(path.read_text() + f"\nimport {imported}  # noqa: E402, F401\n")
    result = lint_imports(tree)
    assert result.returncode == 1, result.stdout[-3000:]
    broken = result.stdout.split("Broken contracts")[-1]
    assert contract in broken and imported in broken


def imported_packages(package: str) -> set[str]:
    """The top-level packages of ours that `package` imports, directly or not (its own included)."""
    graph = grimp.build_graph(*PACKAGES)
    reached = {package}
    for module in graph.find_descendants(package) | {package}:
        reached |= {upstream.split(".")[0] for upstream in graph.find_upstream_modules(module)}
    return reached


@pytest.mark.parametrize("app", sorted(bundle.APPS))
def test_a_bundle_holds_exactly_the_packages_its_app_imports(tmp_path, app):
    package = bundle.APPS[app][0]
    built = bundle.build(app, tmp_path)

    with zipfile.ZipFile(built) as archive:
        shipped = {name.split("/")[0] for name in archive.namelist() if "/" in name}
    assert shipped == imported_packages(package) == {package, "core"}
