"""requirements.txt, environment.yml and pyproject.toml list the same packages."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names that differ from pip names
CONDA_TO_PIP = {"pytorch": "torch", "faiss-gpu": "faiss-cpu", "playwright-python": "playwright"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[]", req.strip(), maxsplit=1)[0].lower()


def _requirements():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return {_name(x) for x in lines if x.strip() and not x.startswith("#")}


def _conda():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    names = set()
    for d in env["dependencies"]:
        if isinstance(d, dict):
            names |= {_name(x) for x in d["pip"] if not x.startswith("-e")}
        elif _name(d) not in ("python", "pip"):
            names.add(CONDA_TO_PIP.get(_name(d), _name(d)))
    return names


def _pyproject():
    p = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_name(x) for x in p["dependencies"]}
    for extra in p["optional-dependencies"].values():
        names |= {_name(x) for x in extra}
    return names


def test_requirements_match_environment_yml():
    assert _requirements() == _conda()


def test_requirements_match_pyproject():
    assert _requirements() == _pyproject()


def test_constraints_pin_torch():
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text()


def test_environment_yml_uses_conda_forge_only():
    """The `pytorch` channel stopped at torch 2.5.1 and mixing it with conda-forge breaks MKL."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]


def test_streamlit_sends_no_usage_statistics():
    """`streamlit run` reads .streamlit/config.toml from the folder it starts in (make demo: the repository root)."""
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["browser"]["gatherUsageStats"] is False
