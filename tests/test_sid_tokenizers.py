"""Tokenizers (RQ-VAE, residual k-means), build/save/load artifacts, the inductive API and the quality report."""

import json

import numpy as np
import pytest
import torch

from specgr.sid import (RQKMeansConfig, RQKMeansTokenizer, RQVAEConfig, RQVAETokenizer, SemanticIDs, SIDConfig,
                        build_semantic_ids, encode_new_items, load_sid_artifacts, print_quality, quality_report,
                        save_sid_artifacts)

C = 6
TINY_RQ = dict(hidden_dims=[32], latent_dim=8, epochs=4, batch_size=16, kmeans_iters=5, progress=False)




@pytest.fixture(scope="module")
def emb(tiny_dataset):
    return tiny_dataset.embeddings()


@pytest.mark.parametrize("update", ["ema", "loss"])
def test_rqvae_trains_and_codes_in_range(tiny_dataset, emb, update):
    n_in = tiny_dataset.n_in_sample
    tok = RQVAETokenizer(RQVAEConfig(codebook_size=C, codebook_update=update, device="cpu", **TINY_RQ)).fit(emb[:n_in])
    assert len(tok.history) == 4 and np.isfinite(tok.history[-1]["recon"])
    assert len(tok.history[-1]["usage"]) == 3 and len(tok.history[-1]["perplexity"]) == 3
    codes = tok.encode(emb)
    assert codes.shape == (len(emb), 3) and codes.dtype == torch.long
    assert int(codes.min()) >= 0 and int(codes.max()) < C
    # same seed -> same codes
    tok2 = RQVAETokenizer(RQVAEConfig(codebook_size=C, codebook_update=update, device="cpu", **TINY_RQ)).fit(emb[:n_in])
    assert torch.equal(tok2.encode(emb), codes)


def test_rqvae_kmeans_init_uses_rows_not_reshape(emb):
    """After k-means init (0 epochs), level-1 codes equal a k-means of the encoder outputs: codebook rows = centroids."""
    tok = RQVAETokenizer(RQVAEConfig(codebook_size=C, device="cpu", **{**TINY_RQ, "epochs": 0}))
    tok.fit(emb)
    with torch.no_grad():
        z = tok.model.encoder(torch.as_tensor(emb))
    cb = tok.model.levels[0].codebook
    from specgr.sid.kmeans import kmeans
    km = kmeans(z, C, n_iter=5, seed=0)
    assert torch.allclose(cb, km.centroids, atol=1e-5)
    # every code of level 1 is used by the data it was fitted on
    assert len(torch.unique(tok.encode(emb)[:, 0])) == C


def test_rqkmeans_codes_and_reconstruction(emb):
    tok = RQKMeansTokenizer(RQKMeansConfig(codebook_size=C, kmeans_iters=10, device="cpu")).fit(emb[:30])
    codes = tok.encode(emb)
    assert codes.shape == (len(emb), 3) and 0 <= int(codes.min()) and int(codes.max()) < C
    # each level reduces the residual on the training rows
    x = torch.as_tensor(emb[:30])
    errs = [float(((x - sum(tok.centroids[l][codes[:30, l]] for l in range(L))) ** 2).sum())
            for L in (1, 2, 3)]
    assert errs[0] > errs[1] > errs[2]


@pytest.mark.parametrize("method", ["rqkmeans", "rqvae"])
def test_build_save_load_and_new_items(tiny_dataset, emb, method, tmp_path):
    n_in = tiny_dataset.n_in_sample
    cfg = SIDConfig(method=method, codebook_size=C, on_overflow="grow", kmeans_iters=10, device="cpu",
                    rqvae=RQVAEConfig(**TINY_RQ))
    sids, tok, rep = build_semantic_ids(emb, n_in, cfg)
    assert sids.n_items == len(emb) and sids.n_in_sample == n_in
    assert len({tuple(r) for r in sids.codes.tolist()}) == sids.n_items
    assert rep["method"] == method and 0 < rep["usage"][0] <= 1
    save_sid_artifacts(tmp_path, sids, tok, cfg, rep)
    assert json.loads((tmp_path / "sid" / f"{method}_report.json").read_text())["n_items"] == len(emb)
    sids2, tok2, cfg2 = load_sid_artifacts(tmp_path, method, device="cpu")  # weights_only=True inside
    assert torch.equal(sids2.codes, sids.codes) and cfg2 == cfg
    assert torch.equal(tok2.encode(emb), tok.encode(emb))
    # inductive: new items get ids after the old ones, old ids unchanged, codes from the frozen tokenizer
    old = sids2.codes.clone()
    new_emb = emb[:3] + 0.01
    ids = encode_new_items(tok2, sids2, new_emb, on_overflow="grow")
    assert ids.tolist() == [len(emb), len(emb) + 1, len(emb) + 2]
    assert torch.equal(sids2.codes[: len(emb)], old)
    assert torch.equal(sids2.codes[ids, :3], tok.encode(new_emb))
    assert len({tuple(r) for r in sids2.codes.tolist()}) == sids2.n_items


def test_inference_only_tokenizer_encodes_the_same_in_fewer_bytes(tiny_dataset, emb, tmp_path):
    """A bundle's tokenizer keeps only what encoding reads: same codes, no decoder, and reconstruct says why not."""
    from specgr.sid.build import load_sid_tokenizer, save_sid_tokenizer

    cfg = SIDConfig(method="rqvae", codebook_size=C, device="cpu", rqvae=RQVAEConfig(codebook_size=C, **TINY_RQ))
    tok = RQVAETokenizer(RQVAEConfig(codebook_size=C, device="cpu", **TINY_RQ)).fit(emb[:tiny_dataset.n_in_sample])
    full = save_sid_tokenizer(tmp_path / "full.pt", tok, cfg)
    small = save_sid_tokenizer(tmp_path / "small.pt", tok, cfg, inference_only=True)
    assert small.stat().st_size < 0.7 * full.stat().st_size
    tok2, cfg2 = load_sid_tokenizer(small, "cpu")
    assert cfg2 == cfg and tok2.inference_only and not any(k.startswith("decoder.") for k in tok2.state_dict()["weights"])
    assert torch.equal(tok2.encode(emb), tok.encode(emb))
    with pytest.raises(ValueError, match="inference"):
        tok2.reconstruct(emb[:2])
    blob = torch.load(small, weights_only=True)
    del blob["tokenizer"]["inference_only"]  # now it claims to be complete: the missing decoder is an error
    torch.save(blob, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="Fix"):
        load_sid_tokenizer(tmp_path / "bad.pt", "cpu")


def test_quality_report_numbers(capsys):
    codes3 = np.array([[0, 0, 0], [0, 0, 0], [0, 1, 1], [1, 1, 1]])
    emb = np.array([[1, 0], [1, 0], [0, 1], [-1, 0]], dtype=np.float32)
    s = SemanticIDs.from_codes(codes3, 3, codebook_size=2)
    r = quality_report(s, emb)
    assert r["usage"] == [1.0, 1.0, 1.0]
    assert r["max_depth"] == 2 and r["depth_hist"] == {1: 2, 2: 1} and r["unique_prefix_share"] == 0.5
    assert r["cosine_prefix3"] == pytest.approx(1.0)  # only pair sharing 3 codes: items 0,1
    assert r["cosine_prefix1"] == pytest.approx(1 / 3)  # pairs (0,1)=1, (0,2)=0, (1,2)=0
    assert r["cosine_random"] == pytest.approx((1 + 0 + -1 + 0 - 1 + 0) / 6)
    assert r["new_prefix_len_hist"] == {0: 1}
    print_quality(r)
    assert "unique 3-code prefix" in capsys.readouterr().out


def test_rqvae_warmup_then_kmeans_init(emb):
    cfg = RQVAEConfig(codebook_size=C, device="cpu", **{**TINY_RQ, "epochs": 1, "warmup_epochs": 2})
    codes = RQVAETokenizer(cfg).fit(emb).encode(emb)
    assert codes.shape == (len(emb), 3) and int(codes.max()) < C


def test_sid_config_from_dict_is_strict():
    c = SIDConfig.from_dict({"method": "rqkmeans", "codebook_size": 8, "rqvae": {"epochs": 3}})
    assert c.rqvae.epochs == 3 and SIDConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="codebok_size"):
        SIDConfig.from_dict({"codebok_size": 8})
    with pytest.raises(ValueError, match="epoch"):
        SIDConfig.from_dict({"rqvae": {"epoch": 3}})
