"""The dataset registry: where each dataset comes from and how to check it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    format: str  # "seqrecbench" or "amazon2023"
    description: str
    # file name (relative to the dataset folder) -> (url, sha256). sha256 None = not pinned upstream (Amazon 2023
    # files are large and versioned by Hugging Face; we record the hash we saw in the manifest instead).
    files: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    default_split: str = "timestamp"


_SRB = "https://github.com/Tiny-Snow/SeqRecBenchmark-Datasets/raw/main/data/{name}/proc.zip"
_HF = "https://huggingface.co/datasets/McAuley-Lab/Amazon-Reviews-2023/resolve/main"


def _amazon2023(domain: str, short: str) -> DatasetSpec:
    files = {f"{domain}.{s}.csv": (f"{_HF}/benchmark/5core/timestamp_w_his/{domain}.{s}.csv", None)
             for s in ("train", "valid", "test")}
    files[f"meta_{domain}.jsonl"] = (f"{_HF}/raw/meta_categories/meta_{domain}.jsonl", None)
    return DatasetSpec(f"amazon2023-{short}", "amazon2023",
                       f"Amazon Reviews 2023 {domain}, 5-core, upstream timestamp split (the SpecGR paper's data)",
                       files, default_split="upstream")


DATASETS: dict[str, DatasetSpec] = {
    "amazon2018-game": DatasetSpec(
        "amazon2018-game", "seqrecbench", "Amazon 2018 Video Games, 5-core, titles (SeqRecBench)",
        {"proc.zip": (_SRB.format(name="amazon2018-game"),
                      "61e683906378924ffb9bfba719afab4c5adf29c287942deba521f69ee6f17bf4")}),
    "amazon2014-beauty": DatasetSpec(
        "amazon2014-beauty", "seqrecbench", "Amazon 2014 Beauty, 5-core, titles (SeqRecBench; the TIGER benchmark)",
        {"proc.zip": (_SRB.format(name="amazon2014-beauty"),
                      "04dcb540be5e1fac0acabee8e4720ffca859fd50261e901769f2102b0acd0f91")}),
    "amazon2023-games": _amazon2023("Video_Games", "games"),
    "amazon2023-office": _amazon2023("Office_Products", "office"),
    "amazon2023-phones": _amazon2023("Cell_Phones_and_Accessories", "phones"),
}


def get_dataset(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}. Fix: use one of them, or "
                       f"for your own catalog `specgr prepare --dataset {name} --interactions FILE.csv --items FILE.csv`.")
    return DATASETS[name]
