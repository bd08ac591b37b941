"""Markdown tables from results/<dataset>/*.json (the shared schema): `python benchmarks/results_table.py DATASET`."""

import json
import sys
from pathlib import Path

from specgr.evaluate import flatten_result

ORDER = ["sasrec", "drafter-knn", "drafter-aux", "drafter-encoder", "tiger", "specgr-knn", "specgr-aux", "specgr++",
         "specgr-aux_no-redraft", "specgr-aux_no-inductive", "specgr-aux_vnew", "specgr++_no-redraft",
         "specgr++_no-inductive", "specgr++_vnew"]
NAMES = {"sasrec": "SASRec (ID)", "drafter-knn": "Semantic-KNN drafter alone", "drafter-aux": "Text drafter alone "
         "(UniSRec-style)", "drafter-encoder": "Encoder drafter alone (SpecGR++ encoder)", "tiger": "TIGER "
         "(constrained beam 50)", "specgr-knn": "SpecGR: semantic-KNN drafter + TIGER", "specgr-aux": "SpecGR_Aux",
         "specgr++": "SpecGR++", "specgr-aux_no-redraft": "SpecGR_Aux w/o guided re-drafting",
         "specgr-aux_no-inductive": "SpecGR_Aux w/o inductive drafting", "specgr-aux_vnew": "SpecGR_Aux, official "
         "v-new loop", "specgr++_no-redraft": "SpecGR++ w/o guided re-drafting", "specgr++_no-inductive": "SpecGR++ w/o "
         "inductive drafting", "specgr++_vnew": "SpecGR++, official v-new loop"}


METRIC_COLUMNS = ("overall_recall@10", "overall_recall@50", "overall_ndcg@10", "overall_ndcg@50", "in_sample_recall@10",
                  "in_sample_recall@50", "in_sample_ndcg@50", "unseen_recall@10", "unseen_recall@50", "unseen_ndcg@50")


def table(ds: str, root="results") -> str:
    d = Path(root) / ds
    rows = ["| method | overall R@10 | R@50 | N@10 | N@50 | in-sample R@10 | R@50 | N@50 | unseen R@10 | R@50 | N@50 "
            "| unseen share of recs | acceptance | recs/s |", "|" + "---|" * 14]
    for m in ORDER:
        f = d / f"{m}.json"
        if not f.exists():
            continue
        f = flatten_result(json.loads(f.read_text()))
        acc = f["acceptance_rate"]
        cells = [f"{f[k]:.4f}" for k in METRIC_COLUMNS]
        cells[1], cells[3] = f"**{cells[1]}**", f"**{cells[3]}**"  # overall R@50, N@50
        rows.append(f"| {NAMES.get(m, m)} | " + " | ".join(cells) + f" | {f['unseen_share']:.3f} | "
                    f"{'' if acc is None else f'{acc:.2f}'} | {f['recs_per_s']:,.0f} |")
    r = json.loads((d / "tiger.json").read_text())
    rows.append(f"\n{r['n_rows']:,} test rows ({r['n_in_sample']:,} in-sample, {r['n_unseen']:,} unseen targets); "
                f"device: {r['device']}.")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table(sys.argv[1]))
