"""A normal (non-editable) install ships every module and data file of each package.

Each package is built as a wheel from a copy of its folder and installed into a scratch venv
without its dependencies; the dependencies come from the lab's venv, whose editable installs
of the lab's own packages are left out, so only the wheels can answer the imports.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {
    "services/common": "reviewlab_common",
    "services/web": "reviewlab_web",
    "services/worker": "reviewlab_worker",
    "infra/lab": "reviewlab_lab",
}
# Data a package reads at run time, beside its modules.
DATA = {
    "reviewlab_common": ["py.typed", "migrations/catalog/env.py", "migrations/shard/env.py"],
    "reviewlab_web": ["shop/templates/shop.html", "shop/static/shop.js", "shop/static/shop.css"],
}
CHECK = """
import importlib, importlib.resources, pkgutil, sys
name, data = sys.argv[1], sys.argv[2:]
package = importlib.import_module(name)
assert "site-packages" in package.__file__ and "/work/" not in package.__file__, package.__file__
for info in pkgutil.walk_packages(package.__path__, name + "."):
    if not info.name.endswith(("__main__", ".app", ".env")) and ".versions." not in info.name:
        importlib.import_module(info.name)
root = importlib.resources.files(name)
missing = [d for d in data if not root.joinpath(d).is_file()]
assert not missing, missing
print("ok", name)
"""


def sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "egg-info" not in str(p))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the four wheels installed, the lab venv's dependencies beside them."""
    root = tmp_path_factory.mktemp("install")
    wheels = root / "wheels"
    for folder in PACKAGES:
        copy = root / "src" / folder
        shutil.copytree(
            REPO / folder, copy, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__")
        )
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
             "--no-index", "-w", str(wheels), str(copy)],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python3*/site-packages"))
    # The lab venv's site-packages as a plain path: its dependencies import, while its
    # editable installs of the lab's packages (hooks run only from .pth files) do not.
    (site / "lab_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
         "--no-deps", "--no-index", *map(str, sorted(wheels.glob("*.whl")))],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return venv


@pytest.mark.parametrize("name", PACKAGES.values())
def test_a_wheel_install_has_every_module_and_data_file(scratch: Path, name: str) -> None:
    done = subprocess.run(
        [str(scratch / "bin" / "python"), "-c", CHECK, name, *DATA.get(name, [])],
        cwd=scratch,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"ok {name}"


def test_every_source_module_is_in_a_package() -> None:
    """No folder of modules is left out of its package: with namespaces off, a folder
    without an __init__.py would silently be missing from the wheel."""
    for folder, name in PACKAGES.items():
        top = REPO / folder / name
        for module in sources(top):
            parent = module.parent
            if "migrations" in parent.relative_to(top).parts:
                continue  # Alembic's env.py and revisions: loaded by path, shipped as data
            assert (parent / "__init__.py").exists(), f"{parent} has no __init__.py"
