"""The CPU install path pulls no CUDA wheel.

`make venv TORCH=cpu` installs torch alone from PyTorch's CPU index, then requirements.txt from the default index.
This checks the second step for real: in an empty venv holding only a CPU torch (this environment's torch metadata),
pip resolves requirements.txt against the default index (`--isolated`: no local mirrors or find-links) with
`--dry-run --report`, and nothing it would install is torch itself or a CUDA library. Skipped offline.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CUDA_PREFIXES = ("nvidia-", "cuda-", "triton")

pytestmark = pytest.mark.slow


def _pip(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=timeout)


def _index_reachable() -> bool:
    probe = _pip("install", "--isolated", "--dry-run", "--no-deps", "--quiet", "--retries", "0", "--timeout", "5",
                 "--ignore-installed", "six", timeout=60)
    return probe.returncode == 0


def test_cpu_path_resolves_no_cuda_wheel(tmp_path):
    dist = metadata.distribution("torch")
    if "+cpu" not in dist.version:
        pytest.skip(f"this environment's torch is {dist.version}, not a CPU build")
    if not _index_reachable():
        pytest.skip("the default package index is not reachable (offline)")
    env = tmp_path / "cpu-venv"
    venv.EnvBuilder(with_pip=False).create(env)
    site = next((env / "lib").glob("python3*/site-packages"))
    # what step 1 leaves behind: torch X.Y.Z+cpu installed (its metadata is all pip reads)
    info = Path(dist._path)  # the .dist-info folder
    shutil.copytree(info, site / info.name)

    report = tmp_path / "report.json"
    r = _pip("--python", str(env / "bin" / "python"), "install", "--isolated", "--dry-run", "--quiet",
             "--report", str(report), "-c", str(ROOT / "constraints.txt"), "-r", str(ROOT / "requirements.txt"))
    assert r.returncode == 0, r.stderr[-2000:]
    names = [i["metadata"]["name"].lower() for i in json.loads(report.read_text())["install"]]
    assert "lightning" in names and "streamlit" in names, "the report lists what would be installed"
    assert "torch" not in names, "the CPU torch already installed must satisfy every requirement"
    assert not [n for n in names if n.startswith(CUDA_PREFIXES)]
