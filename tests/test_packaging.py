"""pyproject.toml and environment.yml must list the same packages."""
from pathlib import Path

import yaml
from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def normalise(requirements: list[str]) -> dict[str, tuple[frozenset, str]]:
    out = {}
    for text in requirements:
        req = Requirement(text)
        name = req.name.lower().replace("_", "-")
        out[name] = (frozenset(req.extras), str(req.specifier))
    return out


def test_environment_yml_lists_what_pyproject_lists():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = normalise(project["dependencies"] + project["optional-dependencies"]["dev"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    assert len(pip_sections) == 1, "environment.yml needs exactly one `pip:` section"
    listed = [r for r in pip_sections[0] if not r.startswith("-")]
    assert "--editable ." in pip_sections[0], "environment.yml must install the package itself"
    got = normalise(listed)
    missing = {k: v for k, v in wanted.items() if got.get(k) != v}
    extra = sorted(set(got) - set(wanted))
    assert not missing and not extra, (
        f"environment.yml and pyproject.toml disagree: pyproject has {missing} that "
        f"environment.yml lacks or states differently; environment.yml has extra {extra}")


def test_python_version_agrees():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    version = python.split("=")[-1]
    assert Requirement(f"python{project['requires-python']}").specifier.contains(version)
