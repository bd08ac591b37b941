"""Docs as tests: every `specgr ...` command in README.md and docs/*.md parses with the real parser, and the README's
Python snippet runs (on the tiny fixture bundle, standing in for the shipped checkpoint)."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from specgr.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "notebooks" / "README.md",
        ROOT / "checkpoints" / "amazon2018-game" / "README.md"]
SHELL = {"", "bash", "sh", "shell", "console"}
INLINE = re.compile(r"(?<!`)`([^`\n]+(?:\n[^`\n]+)?)`(?!`)")  # a code span may wrap onto a second line
LAUNCHERS = {"srun", "time", "exec"}


def specgr_args(line: str) -> list[str] | None:
    """The arguments of the `specgr` command in one shell line (also `python -m specgr.cli`), or None."""
    try:
        tokens = shlex.split(line.strip().removeprefix("$ "), comments=True)
    except ValueError:
        return None
    for i, t in enumerate(tokens):
        if t == "specgr.cli" and i and tokens[i - 1] == "-m":
            return tokens[i + 1:]
        if t == "specgr" and all("=" in x or x in LAUNCHERS for x in tokens[:i]):
            return tokens[i + 1:]
    return None


def split_fences(text: str) -> tuple[list[tuple[str, str]], str]:
    """-> ([(language, body) of every fenced block], the prose outside them)."""
    blocks, prose, lang, body = [], [], None, []
    for line in text.splitlines():
        if line.startswith("```"):
            if lang is None:
                lang, body = line[3:].strip(), []
            else:
                blocks.append((lang, "\n".join(body)))
                lang = None
        elif lang is None:
            prose.append(line)
        else:
            body.append(line)
    return blocks, "\n".join(prose)


def documented_commands() -> list[tuple[str, list[str]]]:
    """(where, args) of every specgr command in a shell block or an inline code span of the docs."""
    out = []
    for doc in DOCS:
        blocks, prose = split_fences(doc.read_text())
        for lang, block in blocks:
            if lang not in SHELL:
                continue
            for line in block.replace("\\\n", " ").splitlines():
                args = specgr_args(line)
                if args is not None:
                    out.append((f"{doc.name}: {line.strip()}", args))
        for span in INLINE.findall(prose):
            span = " ".join(span.split())
            if span.startswith("specgr ") or " -m specgr.cli " in span:
                out.append((f"{doc.name}: `{span}`", specgr_args(span)))
    return out


COMMANDS = documented_commands()
SUBCOMMANDS = set(next(a for a in build_parser()._actions if hasattr(a, "choices") and a.choices).choices)


def test_docs_commands_are_found():
    readme = [args[0] for where, args in COMMANDS if where.startswith("README.md") and args]
    assert len(COMMANDS) >= 30 and {"recommend", "add-items", "pipeline", "evaluate", "sweep"} <= set(readme)


@pytest.mark.parametrize("where,args", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_docs_commands_parse(where, args):
    assert args, f"{where}: no subcommand"
    if len(args) == 1:  # a mention of a subcommand (`specgr prepare`), not a full command
        assert args[0] in SUBCOMMANDS, f"{where}: no subcommand {args[0]!r}"
        return
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(args)
    except SystemExit as e:
        assert e.code == 0, f"{where}: {err.getvalue().strip()}"


TEXT_SUFFIXES = {".md", ".py", ".yaml", ".ipynb", ".sh", ".txt"}


def test_docs_cite_nothing_outside_the_repository():
    """Docs and code cite the paper or files of this repository: a path into the folder beside the checkout (where CI
    keeps its data mirror) would be a dead link for every reader. `.ci/run` itself may point there."""
    try:
        files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    hits = []
    for name in files.splitlines():
        path = ROOT / name
        if name.startswith(".ci/") or path.suffix not in TEXT_SUFFIXES or not path.is_file():
            continue
        hits += [f"{name}: {m.group(0)}" for m in re.finditer(r"\.\./shared/\S*", path.read_text(errors="replace"))]
    assert not hits, f"cite the paper or a file in this repository instead: {hits}"


def readme_python(i: int = 0) -> str:
    """The README's i-th Python snippet (0: the front door, 1: many users on a GPU)."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) > i, f"README.md has no Python snippet number {i}"
    return blocks[i]


def _readme_folder(tiny_pipeline, tmp_path, monkeypatch):
    """Run from a folder where checkpoints/amazon2018-game is the tiny bundle and data/processed holds its dataset."""
    p, bundle = tiny_pipeline
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "amazon2018-game").symlink_to(bundle)
    (tmp_path / "data" / "processed").mkdir(parents=True)
    (tmp_path / "data" / "processed" / p.ds_name).symlink_to(p.ds.path)
    monkeypatch.chdir(tmp_path)
    return p


def test_docs_readme_snippet_runs(tiny_pipeline, tmp_path, monkeypatch):
    """The snippet exactly as printed: run from a folder where checkpoints/amazon2018-game is the tiny bundle and
    data/processed holds its dataset. The tiny fixture's text model is fake, so texts get a catalog item's vector."""
    import specgr.text

    p = _readme_folder(tiny_pipeline, tmp_path, monkeypatch)
    emb = p.ds.embeddings()
    monkeypatch.setattr(specgr.text, "embed_texts", lambda texts, *a, **k: emb[[1] * len(texts)])
    scope: dict = {}
    with contextlib.redirect_stdout(io.StringIO()) as out:
        exec(compile(readme_python(), "README.md", "exec"), scope)
    assert scope["new_id"] == p.ds.n_items and scope["res"].items.shape == (1, 5)
    assert out.getvalue().startswith("torch.Size([4, 10])")


@pytest.mark.gpu
def test_docs_readme_gpu_snippet_runs(tiny_pipeline, tmp_path, monkeypatch):
    """The README's GPU snippet exactly as printed (compiled decoder, one CUDA graph per batch) on the tiny bundle,
    with the lists of the plain loop."""
    p = _readme_folder(tiny_pipeline, tmp_path, monkeypatch)
    scope: dict = {}
    with contextlib.redirect_stdout(io.StringIO()) as out:
        exec(compile(readme_python(1), "README.md", "exec"), scope)
    rows = p.ds.rows("test")
    assert scope["res"].items.shape == (len(rows.hist_len), scope["rec"].cfg.top_k)
    assert "recs/s" in out.getvalue()
    plain = scope["b"].specgr("encoder").recommend_rows(rows, batch_size=1024, progress=False)
    same = (plain.items == scope["res"].items).all(1).float().mean().item()
    assert same >= 0.9, f"{same:.2f} of the lists equal the eager loop's (bf16 near-ties may flip a few)"
