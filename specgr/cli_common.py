"""What every `specgr` subcommand shares: a parser whose errors are one line with the fix, the help formatter,
argument types, and result tables. The entry point is specgr.cli; its subcommand modules import from here."""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" only where it tells something: not when the help text already states the default, and
    not for None or an unset flag."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text.lower() or action.default is None or action.default is False:
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `error: <what>. Fix: <how>` (no usage block, exit status 2)."""

    def error(self, message):
        fix = "" if "Fix:" in message else f". Fix: see `{self.prog} --help`"
        self.exit(2, f"error: {self.prog}: {message}{fix}\n")


def add_parser(sub, name: str, text: str, **kw) -> argparse.ArgumentParser:
    """A subcommand whose one-line summary (in `specgr --help`) is also its own --help description."""
    return sub.add_parser(name, help=text, description=text, formatter_class=HelpFormatter, **kw)


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (a batch size, a row count, δ, β, K)."""
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1. Fix: pass N >= 1")
    return v


def specgr_knobs(p):
    p.add_argument("--delta", type=positive_int, default=None, help="δ: items drafted per round (default: the "
                   "bundle's)")
    p.add_argument("--beta", type=positive_int, default=None, help="β: beam width guiding re-drafting (default: the "
                   "bundle's)")
    p.add_argument("--gamma", type=float, default=None, help="γ: accept a draft iff its mean log-likelihood > γ "
                   "(default: the bundle's)")
    p.add_argument("-k", "--k", type=positive_int, default=None, help="K: length of the recommendation list "
                   "(default: the bundle's, else 50)")
    p.add_argument("--no-redraft", action="store_true", help="ablation: no guided re-drafting")
    p.add_argument("--no-inductive", action="store_true", help="ablation: drafts limited to in-sample items")
    p.add_argument("--vnew", action="store_true", help="the official v-new loop variants (round-3 re-draft, "
                   "first-K-accepted, prefix-length rule)")


def bundle_args(p):
    p.add_argument("--checkpoint", default="checkpoints/amazon2018-game", help="a bundle directory")
    p.add_argument("--data-root", default="data/processed", help="root of processed datasets")
    p.add_argument("--batch-size", type=positive_int, default=256, help="users per batch")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def print_table(title: str, rows, columns=("", "")):
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*[str(x) for x in r])
    Console().print(t)


def error_message(e: Exception) -> str:
    """The message alone, on one line: str(KeyError) is the repr of its argument, quotes included."""
    msg = str(e.args[0]) if isinstance(e, KeyError) and len(e.args) == 1 else str(e)
    return " ".join(msg.split())
