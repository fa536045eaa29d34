"""The Binder environment (binder/) agrees with pyproject.toml, installs the extras the notebooks need, and the
README's Binder badge opens a real notebook.

Parses the real files: pyproject.toml with tomllib, binder/requirements.txt line by line with
packaging.requirements, the badge URL with urllib. Nothing is installed or downloaded.
"""

from __future__ import annotations

import re
import shlex
import sys
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
BADGE = re.compile(r"\[!\[[^\]]*\]\(https://mybinder\.org/badge[^)]*\)\]\((?P<url>https://mybinder\.org/v2/[^)\s]+)\)")
NOTEBOOK_PATH = re.compile(r"notebooks/[\w./-]+\.ipynb")


@dataclass
class PipFile:
    """A pip requirements file: requirement lines, local (path) installs and index options."""

    requirements: list[Requirement] = field(default_factory=list)
    local: list[tuple[str, frozenset[str], bool]] = field(default_factory=list)  # (path, extras, editable)
    index_urls: list[str] = field(default_factory=list)
    extra_index_urls: list[str] = field(default_factory=list)


def split_extras(target: str) -> tuple[str, frozenset[str]]:
    """``.[all]`` -> (".", {"all"})."""
    match = re.fullmatch(r"(?P<path>[^\[]+)(\[(?P<extras>[^\]]*)\])?", target)
    assert match, f"not a local install target: {target!r}"
    extras = frozenset(e.strip() for e in (match.group("extras") or "").split(",") if e.strip())
    return match.group("path"), extras


def parse_pip_file(path: Path) -> PipFile:
    """Parse ``path`` as pip does for the options used here; anything else is an error, not silently skipped."""
    parsed = PipFile()
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        where = f"{path.relative_to(ROOT)}:{number}"
        words = shlex.split(line)
        option, value = words[0], None
        if option.startswith("--") and "=" in option:
            option, value = option.split("=", 1)
        if option in ("--index-url", "-i", "--extra-index-url"):
            value = value if value is not None else words[1]
            (parsed.index_urls if option in ("--index-url", "-i") else parsed.extra_index_urls).append(value)
        elif option in ("-e", "--editable"):
            parsed.local.append((*split_extras(value if value is not None else words[1]), True))
        elif line.startswith((".", "/")) or line.startswith("file:"):
            parsed.local.append((*split_extras(line), False))
        elif line.startswith("-"):
            raise AssertionError(f"{where}: option {line!r} is not understood by tests/test_binder.py; extend it")
        else:
            try:
                parsed.requirements.append(Requirement(line))
            except InvalidRequirement as error:
                raise AssertionError(f"{where}: {error}") from None
    return parsed


@pytest.fixture(scope="module")
def pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


@pytest.fixture(scope="module")
def binder() -> PipFile:
    path = BINDER / "requirements.txt"
    assert path.is_file(), "binder/requirements.txt is missing: Binder would not know what to install"
    return parse_pip_file(path)


def by_name(requirements: list[Requirement]) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in requirements}


def lower_bound(specifier: SpecifierSet) -> Version | None:
    bounds = [Version(s.version) for s in specifier if s.operator in (">=", "==", "~=")]
    return max(bounds) if bounds else None


def installs_this_package(binder: PipFile) -> bool:
    """Whether a local line installs the repository root (repo2docker runs pip from there)."""
    return any((ROOT / path.removeprefix("file:")).resolve() == ROOT for path, _, _ in binder.local)


def with_extras(pyproject: dict, extras: set[str] | frozenset[str]) -> dict[str, Requirement]:
    """The requirements this package brings with ``extras``, its own extras referring to others expanded."""
    project = pyproject["project"]
    found = by_name([Requirement(d) for d in project["dependencies"]])
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        assert extra in project["optional-dependencies"], f"no extra [{extra}] in pyproject.toml"
        for line in project["optional-dependencies"][extra]:
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) == project["name"]:
                todo.extend(requirement.extras)
            else:
                found[canonicalize_name(requirement.name)] = requirement
    return found


def binder_installs(pyproject: dict, binder: PipFile) -> dict[str, Requirement]:
    extras = frozenset().union(*(e for path, e, _ in binder.local if (ROOT / path).resolve() == ROOT))
    return {**with_extras(pyproject, extras), **by_name(binder.requirements)}


def test_binder_uses_pip_only():
    """repo2docker lets environment.yml win over requirements.txt: a stray one would silently replace this setup."""
    for name in ("environment.yml", "environment.yaml", "Pipfile", "Pipfile.lock", "setup.py", "install.R"):
        assert not (BINDER / name).exists(), f"binder/{name} would override or confuse binder/requirements.txt"


def test_binder_installs_this_package(pyproject, binder):
    assert installs_this_package(binder), "binder/requirements.txt must install this package: add `-e .`"
    assert pyproject["project"]["name"] == "explorer"
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    assert any(re.fullmatch(pattern.replace("*", ".*"), "explorer") for pattern in include), \
        "pyproject's package discovery does not include the explorer package"
    assert (ROOT / "explorer" / "__init__.py").is_file()


def test_binder_brings_every_runtime_dependency(pyproject, binder):
    """Installing the package makes pip resolve [project].dependencies; otherwise each must be listed by name."""
    if installs_this_package(binder):
        return
    listed = by_name(binder.requirements)
    dependencies = [Requirement(d) for d in pyproject["project"]["dependencies"]]
    missing = [str(d) for d in dependencies if canonicalize_name(d.name) not in listed]
    assert not missing, f"binder/requirements.txt neither installs the package (-e .) nor lists {missing}"


def test_torch_comes_from_the_cpu_index_within_pyprojects_ranges(pyproject, binder):
    assert CPU_INDEX in binder.index_urls + binder.extra_index_urls, (
        f"binder/requirements.txt must name PyTorch's CPU wheel index {CPU_INDEX} (Binder has no GPU; the default "
        "PyPI torch wheel pulls in gigabytes of CUDA libraries)")
    assert not [u for u in binder.index_urls + binder.extra_index_urls if re.search(r"/whl/cu\d+", u)], \
        "a CUDA wheel index in binder/requirements.txt"
    project = by_name([Requirement(d) for d in pyproject["project"]["dependencies"]])
    listed = by_name(binder.requirements)
    for name in ("torch", "torchvision"):
        assert name in listed, f"binder/requirements.txt must pin {name} next to the CPU index"
        assert "+cu" not in str(listed[name].specifier), f"{name}: a CUDA build is pinned"
        low = lower_bound(listed[name].specifier)
        assert low is not None, f"binder/requirements.txt: give {name} a lower bound"
        assert listed[name].specifier.contains(low, prereleases=True), f"{name}: empty range {listed[name].specifier}"
        assert project[name].specifier.contains(low, prereleases=True), (
            f"binder's {name}{listed[name].specifier} allows {low}, outside pyproject's {project[name].specifier}")


def test_every_binder_requirement_is_compatible_with_pyproject(pyproject, binder):
    project = by_name([Requirement(d) for d in pyproject["project"]["dependencies"]])
    for requirement in binder.requirements:
        name = canonicalize_name(requirement.name)
        assert name in project, f"binder installs {requirement}, which pyproject.toml does not depend on"
        low = lower_bound(requirement.specifier)
        if low is not None:
            assert project[name].specifier.contains(low, prereleases=True), (
                f"binder's {requirement} allows {low}, outside pyproject's {project[name]}")


def test_binder_installs_every_extra_the_notebooks_use(pyproject, binder):
    """The notebooks open the live explorer ([lab]), UMAP views ([umap]) and mnist-5k ([data]): [all] of them."""
    installed = binder_installs(pyproject, binder)
    missing = sorted(set(with_extras(pyproject, {"all"})) - set(installed))
    assert not missing, f"binder/requirements.txt does not install {missing}: use -e .[all]"


def test_the_core_install_leaves_the_lab_to_its_extra(pyproject):
    core = by_name([Requirement(d) for d in pyproject["project"]["dependencies"]])
    for name in ("jupyterlab", "ipywidgets", "bokeh", "jupyter-bokeh", "ipykernel", "umap-learn", "mlxtend"):
        assert name not in core, f"{name} is in the core dependencies; it belongs to an extra"


def test_the_live_widgets_render_in_jupyterlab(pyproject, binder):
    """ipywidgets >= 8 and jupyter_bokeh >= 4 ship prebuilt JupyterLab 4 extensions: installing them is enough."""
    project = binder_installs(pyproject, binder)
    for name, first in (("jupyterlab", "4"), ("ipywidgets", "8"), ("jupyter-bokeh", "4"), ("ipykernel", "6")):
        assert name in project, f"Binder must install {name} (the [lab] extra) for the explorer"
        low = lower_bound(project[name].specifier)
        assert low is not None and low >= Version(first), f"{name} needs >= {first} (prebuilt lab extension)"
    post_build = BINDER / "postBuild"
    if post_build.exists():
        assert post_build.stat().st_mode & 0o111, "binder/postBuild must be executable"
        text = post_build.read_text()
        assert text.startswith("#!"), "binder/postBuild needs a shebang line"
        for extension in ("@jupyter-widgets/jupyterlab-manager", "@bokeh/jupyter_bokeh"):
            assert extension in text


def test_binder_python_satisfies_requires_python(pyproject):
    runtime = BINDER / "runtime.txt"
    if not runtime.exists():
        pytest.skip("no binder/runtime.txt: repo2docker's default Python")
    match = re.fullmatch(r"python-(\d+\.\d+)", runtime.read_text().strip())
    assert match, f"binder/runtime.txt must read python-X.Y, got {runtime.read_text()!r}"
    requires = SpecifierSet(pyproject["project"]["requires-python"])
    assert requires.contains(Version(match.group(1))), f"Python {match.group(1)} is outside requires-python {requires}"


def badge_url() -> urllib.parse.ParseResult:
    readme = (ROOT / "README.md").read_text()
    head = "\n".join(readme.splitlines()[:5])
    match = BADGE.search(head)
    assert match, "README.md has no Binder badge in its first lines"
    return urllib.parse.urlparse(match.group("url"))


def test_the_badge_launches_this_repository_in_jupyterlab():
    url = badge_url()
    parts = url.path.split("/")  # '', 'v2', 'gh', owner, repo, ref
    assert parts[1:3] == ["v2", "gh"] and len(parts) == 6 and all(parts[3:]), f"not a GitHub Binder URL: {url.path}"
    assert parts[4] == "explorer"
    query = urllib.parse.parse_qs(url.query)
    assert query.get("urlpath", [""])[0].startswith("lab/tree/notebooks/"), "the badge must open JupyterLab"


def opened_notebooks() -> set[str]:
    """Notebook paths the badge opens or the binder files name."""
    paths = {urllib.parse.parse_qs(badge_url().query)["urlpath"][0].removeprefix("lab/tree/")}
    for path in BINDER.iterdir():
        if path.is_file():
            paths.update(NOTEBOOK_PATH.findall(path.read_text()))
    return paths


def test_the_opened_notebook_is_01_kl_failure():
    assert opened_notebooks() == {"notebooks/01_kl_failure.ipynb"}


def test_the_opened_notebook_exists():
    missing = sorted(p for p in opened_notebooks() if not (ROOT / p).is_file())
    assert not missing, f"the Binder badge / binder files open notebooks that do not exist: {missing}"


APP_BADGE = re.compile(r"\]\((?P<url>https://mybinder\.org/v2/[^)\s]+\?urlpath=voila[^)\s]*)\)")


def test_the_app_badge_opens_the_page_on_a_shipped_model(pyproject, binder):
    from explorer.widgets import page

    match = APP_BADGE.search("\n".join((ROOT / "README.md").read_text().splitlines()[:5]))
    assert match, "README.md has no badge opening the app (urlpath=voila/render/...) in its first lines"
    url = urllib.parse.urlparse(match.group("url"))
    assert url.path == badge_url().path, "the app badge launches another repository or ref than the first badge"
    notebook, _, query = urllib.parse.parse_qs(url.query)["urlpath"][0].removeprefix("voila/render/").partition("?")
    assert ROOT / notebook == page.NOTEBOOK
    run = ROOT / page.requested_run({"QUERY_STRING": query})  # Binder's working directory is the checkout
    assert page.checked_run(run) == (run, False)
    assert "voila" in binder_installs(pyproject, binder), "Binder must install Voila (the [app] extra)"
