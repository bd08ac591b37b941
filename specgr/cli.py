"""`specgr` command line. Each subcommand is a thin layer over the library API; `specgr <cmd> --help` explains it."""

from __future__ import annotations

import sys

from specgr import cli_recommend, cli_stages
from specgr.cli_common import HelpFormatter, Parser, add_parser, error_message, positive_int, print_table


def cmd_download(a):
    from specgr.data.download import verified_path
    from specgr.data.registry import get_dataset

    spec = get_dataset(a.dataset)
    for f in spec.files:
        print(verified_path(spec, f, a.mirror, a.cache))


def cmd_datasets(a):
    from specgr.data.registry import DATASETS

    print_table("datasets", [(d.name, d.format, d.description) for d in DATASETS.values()],
                 ("name", "format", "description"))


def cmd_prepare(a):
    from specgr.data.prepare import prepare, summary_rows

    ds, _ = prepare(a.dataset, a.out, split=a.split, valid_quantile=a.valid_quantile, test_quantile=a.test_quantile,
                    max_history=a.max_history, text_model=None if a.no_embed else a.text_model, mirror=a.mirror,
                    interactions=a.interactions, items=a.items, device=a.device, out_name=a.name)
    print_table(f"specgr prepare: {ds.path}", summary_rows(ds), ("", "value"))
    acc = ds.manifest["accounting"]
    print_table("data accounting (nothing is dropped silently)",
                 [(r["stage"], r["what"], f"{r['count']:,}", r["reason"]) for r in acc],
                 ("stage", "what", "count", "reason"))


def add_data_args(p, own_catalog: bool = True):
    p.add_argument("--dataset", required=True, help="registered dataset name (see `specgr datasets`)" + (
        ", with its split appended for another split (amazon2014-beauty-loo), or a name for your own catalog with "
        "--interactions/--items; it names the folder data/processed/<name>/" if own_catalog else ""))
    p.add_argument("--mirror", default=None, help="folder holding <dataset>/<file> (overrides $SPECGR_DATA_MIRROR); "
                   "used before any download")


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(prog="specgr", description=__doc__, formatter_class=HelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = add_parser(sub, "datasets", "list the registered datasets (name, source format, description)")
    p.set_defaults(fn=cmd_datasets)

    p = add_parser(sub, "download", "fetch a registered dataset's files (a local mirror first), verifying sha256")
    add_data_args(p, own_catalog=False)
    p.add_argument("--cache", default=None, help="download folder (default: data/raw)")
    p.set_defaults(fn=cmd_download)

    p = add_parser(sub, "prepare", "split a dataset and embed item text into data/processed/<name>/")
    add_data_args(p)
    p.add_argument("--out", default="data/processed", help="root folder of processed datasets")
    p.add_argument("--name", default=None, help="output folder name (default: the dataset, plus -<split> for a split "
                   "other than the source's usual one, e.g. amazon2014-beauty-loo)")
    p.add_argument("--split", default=None, choices=["timestamp", "loo", "upstream"],
                   help="timestamp: global cut-offs (the paper); loo: leave-one-out (TIGER); upstream: the files' "
                   "own split (Amazon 2023). Default: timestamp, or upstream for Amazon 2023")
    p.add_argument("--valid-quantile", type=float, default=0.8, help="timestamp split: valid starts at this "
                   "interaction-time quantile")
    p.add_argument("--test-quantile", type=float, default=0.9, help="timestamp split: test starts here")
    p.add_argument("--max-history", type=positive_int, default=20, help="histories keep the last N items")
    p.add_argument("--text-model", default="sentence-transformers/all-MiniLM-L6-v2",
                   help="sentence-transformers model for item text (the paper: sentence-transformers/sentence-t5-base)")
    p.add_argument("--no-embed", action="store_true", help="skip the text embeddings")
    p.add_argument("--device", default="auto", help="embedding device: auto, cpu, cuda")
    p.add_argument("--interactions", default=None, help="your own interactions CSV (user_id,item_id,timestamp)")
    p.add_argument("--items", default=None, help="your own items CSV (item_id,text)")
    p.set_defaults(fn=cmd_prepare)

    cli_stages.register(sub)  # sid, train, evaluate, sweep, pipeline
    cli_recommend.register(sub)  # recommend, add-items
    return ap


# the commands that use the processes of one torchrun launch (docs/DISTRIBUTED.md); every other command would run
# once per process, repeating its work and writing the same files
SHARDED_COMMANDS = ("train", "evaluate", "recommend")


def check_launch(a) -> None:
    """Refuse a torchrun launch (WORLD_SIZE > 1) that the command would not use, with the fix."""
    from specgr.distributed import launch_size, refuse_launch

    world = launch_size()
    if world <= 1:
        return
    cmd = a.fn.__name__.removeprefix("cmd_").replace("_", "-")
    if cmd not in SHARDED_COMMANDS or (cmd == "train" and a.model not in cli_stages.MULTI_GPU_MODELS):
        refuse_launch(f"specgr {cmd}" + (f" {a.model}" if cmd == "train" else ""))
    if cmd == "train" and a.devices * a.num_nodes != world:
        raise ValueError(f"torchrun launched {world} processes, but --devices {a.devices} x --num-nodes "
                         f"{a.num_nodes} = {a.devices * a.num_nodes}. Fix: pass --devices "
                         f"{max(1, world // a.num_nodes)} (processes per node) and --num-nodes to match the launch.")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_launch(args)
        args.fn(args)
    except (FileNotFoundError, KeyError, ValueError) as e:  # our errors name their fix: no traceback
        print(f"error: {error_message(e)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
