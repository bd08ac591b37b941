"""`specgr --help` and its subcommands: every option explained once, defaults printed once, clean error messages."""

from __future__ import annotations

import argparse

import pytest

from specgr.cli import build_parser, main
from specgr.cli_common import HelpFormatter


def _subparsers(ap: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


SUBCOMMANDS = _subparsers(build_parser())


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_subcommand_and_option_is_described_once(name):
    p = SUBCOMMANDS[name]
    assert p.description, f"`specgr {name} --help` has no description"
    fmt = HelpFormatter(p.prog)
    for a in p._actions:
        if a.help == argparse.SUPPRESS:
            continue
        assert a.help, f"`specgr {name}` option {a.option_strings or a.dest} has no help text"
        shown = fmt._expand_help(a)
        assert shown.lower().count("default") <= 1, f"`specgr {name}`: default stated twice: {shown!r}"
    text = p.format_help()
    assert "(default: None)" not in text and "(default: False)" not in text


def test_download_help_names_only_its_own_flags():
    text = SUBCOMMANDS["download"].format_help()
    assert "--interactions" not in text and "--items" not in text


def test_sweep_writes_outside_the_tracked_results_by_default():
    args = build_parser().parse_args(["sweep"])
    assert not args.out.startswith("results")


def test_unknown_dataset_error_has_no_stray_quotes(capsys):
    assert main(["download", "--dataset", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown dataset 'nope'"), err
    assert not err.endswith('"')
