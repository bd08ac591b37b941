"""RQ-VAE tokenizer (TIGER / SpecGR): MLP autoencoder with a 3-level residual quantizer in the latent space.

Differences from the official code (docs/METHOD.md §2), on purpose:
- k-means init of every level on the (untrained) encoder outputs / residuals, with the (C, D) centroid matrix used
  as is (the official code reshapes (C, D) -> (D, C), which scrambles the init);
- dead-code restarts (a code unused for an epoch is moved onto a random current residual);
- optional loss-updated codebooks besides the paper's EMA ones; seeded; far fewer epochs (see RQVAEConfig.epochs).

Shapes: x (B, d_in) text embeddings -> z (B, D) latent -> codes (B, levels) -> z_q (B, D) -> x_hat (B, d_in).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from specgr.config import from_dict
from specgr.sid.kmeans import kmeans, nearest
from specgr.utils import resolve_device

log = logging.getLogger(__name__)


def _training_only(key: str) -> bool:
    """Weights that encoding never reads: the decoder and the codebooks' EMA running statistics."""
    return key.startswith("decoder.") or key.endswith((".cluster_size", ".embed_sum"))


@dataclass
class RQVAEConfig:
    hidden_dims: list[int] = field(default_factory=lambda: [2048, 1024, 512, 256])  # paper: 768->2048->...->128
    latent_dim: int = 128
    codebook_size: int = 256
    levels: int = 3
    beta: float = 0.25  # commitment weight
    codebook_update: str = "ema"  # "ema" (paper) or "loss" (VQ-VAE codebook loss)
    ema_decay: float = 0.99
    ema_eps: float = 1e-5
    # 10k epochs (official) is absurd for 16k items; with k-means init + Adam the loss and code usage plateau well
    # before 200 epochs (measured; see docs / the issue-3 report).
    epochs: int = 200
    batch_size: int = 2048
    optimizer: str = "adam"  # "adam" or "adagrad" (official, lr 1e-3, needs far more epochs)
    lr: float = 1e-3
    weight_decay: float = 0.0
    kmeans_init: bool = True
    # plain-autoencoder epochs (no quantizer) before the k-means init, so the codebooks start on trained latents
    # rather than on a random encoder's outputs, which drift away as soon as training starts (0 = paper behaviour)
    warmup_epochs: int = 0
    kmeans_iters: int = 25
    dead_code_restart: bool = True
    restart_stop_frac: float = 0.2  # no restarts in the last 20% of epochs, so the final codebook is trained
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    log_every: int = 0  # log a line every N epochs (0: only at the end)


class VQLevel(nn.Module):
    """One codebook (C, D). EMA mode keeps running cluster sizes / sums; loss mode learns it by gradient."""

    def __init__(self, C: int, D: int, ema: bool, decay: float, eps: float):
        super().__init__()
        self.ema, self.decay, self.eps = ema, decay, eps
        init = torch.randn(C, D) / math.sqrt(D)
        if ema:
            self.register_buffer("codebook", init)
            self.register_buffer("cluster_size", torch.ones(C))
            self.register_buffer("embed_sum", init.clone())
        else:
            self.codebook = nn.Parameter(init)

    @torch.no_grad()
    def set_codebook(self, cent: torch.Tensor, counts: torch.Tensor | None = None):
        """cent (C, D): used directly as rows (no reshape)."""
        self.codebook.data.copy_(cent)
        if self.ema:
            cs = counts.float().clamp(min=1) if counts is not None else torch.ones(len(cent), device=cent.device)
            self.cluster_size.copy_(cs)
            self.embed_sum.copy_(cent * cs[:, None])

    @torch.no_grad()
    def restart(self, dead: torch.Tensor, samples: torch.Tensor):
        """Move dead codes (bool (C,)) onto rows of samples (S, D)."""
        self.codebook.data[dead] = samples
        if self.ema:
            self.cluster_size[dead] = 1.0
            self.embed_sum[dead] = samples

    def forward(self, r: torch.Tensor):
        """r (B, D) residual -> (q (B, D), idx (B,), loss scalar without beta split: (commit, codebook))."""
        idx, _ = nearest(r.detach(), self.codebook.detach())
        q = F.embedding(idx, self.codebook)
        commit = F.mse_loss(r, q.detach())
        cb = F.mse_loss(q, r.detach()) if not self.ema else r.new_zeros(())
        if self.ema and self.training:
            self._ema_update(r.detach(), idx)
        return q, idx, commit, cb

    @torch.no_grad()
    def _ema_update(self, r, idx):
        C = len(self.codebook)
        onehot_sum = torch.zeros_like(self.embed_sum).index_add_(0, idx, r)
        counts = torch.bincount(idx, minlength=C).float()
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(onehot_sum, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + C * self.eps) * n  # Laplace smoothing
        self.codebook.data.copy_(self.embed_sum / smoothed[:, None])


def mlp(dims: list[int]) -> nn.Sequential:
    layers = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class RQVAE(nn.Module):
    def __init__(self, input_dim: int, cfg: RQVAEConfig):
        super().__init__()
        dims = [input_dim, *cfg.hidden_dims, cfg.latent_dim]
        self.encoder, self.decoder = mlp(dims), mlp(dims[::-1])
        ema = cfg.codebook_update == "ema"
        if cfg.codebook_update not in ("ema", "loss"):
            raise ValueError(f"codebook_update must be ema|loss, got {cfg.codebook_update!r}")
        self.levels = nn.ModuleList(VQLevel(cfg.codebook_size, cfg.latent_dim, ema, cfg.ema_decay, cfg.ema_eps)
                                    for _ in range(cfg.levels))
        self.beta = cfg.beta

    def quantize(self, z: torch.Tensor):
        """z (B, D) -> (z_q (B, D) straight-through, codes (B, levels), residuals list, commit, codebook losses)."""
        r, qsum, codes, res, commit, cb = z, torch.zeros_like(z), [], [], 0.0, 0.0
        for lvl in self.levels:
            res.append(r.detach())
            q, idx, c, b = lvl(r)
            qsum = qsum + q
            r = r - q.detach()  # next level quantizes what is left; gradient reaches z through every commit term
            codes.append(idx)
            commit, cb = commit + c, cb + b
        z_q = z + (qsum - z).detach()  # straight-through: decoder sees the codes, gradient goes to the encoder
        return z_q, torch.stack(codes, 1), res, commit, cb

    def forward(self, x: torch.Tensor):
        z = self.encoder(x)
        z_q, codes, res, commit, cb = self.quantize(z)
        x_hat = self.decoder(z_q)
        recon = F.mse_loss(x_hat, x)
        return recon + self.beta * commit + cb, recon, codes, res


def usage_stats(codes: torch.Tensor, C: int) -> tuple[list[float], list[float]]:
    """codes (N, levels) -> (usage = used/C per level, perplexity per level)."""
    usage, ppl = [], []
    for l in range(codes.shape[1]):
        p = torch.bincount(codes[:, l], minlength=C).float()
        p = p / p.sum()
        usage.append(float((p > 0).float().mean()))
        ppl.append(float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum())))
    return usage, ppl


class RQVAETokenizer:
    """fit(in-sample embeddings) -> encode(any embeddings) -> (N, levels) codes; state_dict for the frozen model."""

    kind = "rqvae"

    def __init__(self, cfg: RQVAEConfig | None = None):
        self.cfg = cfg or RQVAEConfig()
        self.model: RQVAE | None = None
        self.input_dim: int | None = None
        self.history: list[dict] = []
        self.inference_only = False  # loaded without its decoder (a bundle's tokenizer): encode only

    @property
    def device(self) -> torch.device:
        return resolve_device(self.cfg.device)

    def _build(self, input_dim: int):
        torch.manual_seed(self.cfg.seed)
        self.input_dim = input_dim
        self.model = RQVAE(input_dim, self.cfg).to(self.device)

    @torch.no_grad()
    def _kmeans_init(self, x: torch.Tensor):
        """Init each level by k-means on that level's residuals of the (untrained) encoder outputs."""
        self.model.eval()
        r = torch.cat([self.model.encoder(b) for b in x.split(8192)])
        for l, lvl in enumerate(self.model.levels):
            km = kmeans(r, self.cfg.codebook_size, n_iter=self.cfg.kmeans_iters, seed=self.cfg.seed + l)
            cent = km.centroids.to(r.device)
            lvl.set_codebook(cent, torch.bincount(km.assign.to(r.device), minlength=len(cent)))
            r = r - cent[km.assign.to(r.device)]

    def _warmup(self, x: torch.Tensor, opt, g: torch.Generator):
        """Train encoder + decoder as a plain autoencoder (z -> decoder, no quantization)."""
        self.model.train()
        for _ in tqdm(range(self.cfg.warmup_epochs), desc="rqvae warmup", disable=not self.cfg.progress, leave=False):
            for idx in torch.randperm(len(x), generator=g).to(x.device).split(self.cfg.batch_size):
                xb = x[idx]
                loss = F.mse_loss(self.model.decoder(self.model.encoder(xb)), xb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

    def fit(self, emb, callback=None) -> "RQVAETokenizer":
        """emb (N_in, d): in-sample item embeddings only (new items must not shape the codebooks).

        callback(epoch_record: dict, tokenizer) runs after every epoch (notebooks, convergence studies).
        """
        cfg, dev = self.cfg, self.device
        x = torch.as_tensor(np.asarray(emb) if not torch.is_tensor(emb) else emb).float().to(dev)
        if len(x) < cfg.codebook_size:
            raise ValueError(f"{len(x)} items < codebook_size {cfg.codebook_size}. Fix: a smaller codebook_size.")
        self._build(x.shape[1])
        self.history = []
        opt = (torch.optim.Adagrad if cfg.optimizer == "adagrad" else torch.optim.AdamW)(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        g = torch.Generator(device="cpu").manual_seed(cfg.seed)
        if cfg.warmup_epochs:
            self._warmup(x, opt, g)
        if cfg.kmeans_init:
            self._kmeans_init(x)
        C, n = cfg.codebook_size, len(x)
        stop_restart = int(cfg.epochs * (1 - cfg.restart_stop_frac))
        t0 = time.time()
        bar = tqdm(range(cfg.epochs), desc="rqvae", disable=not cfg.progress, leave=False)
        for ep in bar:
            self.model.train()
            perm = torch.randperm(n, generator=g).to(dev)
            counts = torch.zeros(cfg.levels, C, device=dev)
            tot, tot_rec = 0.0, 0.0
            for s in range(0, n, cfg.batch_size):
                xb = x[perm[s:s + cfg.batch_size]]
                loss, recon, codes, res = self.model(xb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                for l in range(cfg.levels):
                    counts[l] += torch.bincount(codes[:, l], minlength=C)
                tot += float(loss.detach()) * len(xb)
                tot_rec += float(recon.detach()) * len(xb)
            restarted = 0
            if cfg.dead_code_restart and ep < stop_restart:
                for l, lvl in enumerate(self.model.levels):
                    dead = counts[l] == 0
                    k = int(dead.sum())
                    if k:  # residuals of the last batch at this level
                        pick = torch.randint(len(res[l]), (k,), generator=g).to(dev)
                        lvl.restart(dead, res[l][pick])
                        restarted += k
            p = counts / counts.sum(1, keepdim=True)
            ppl = torch.exp(-(torch.where(p > 0, p * p.clamp(min=1e-12).log(), 0.0)).sum(1))
            rec = {"epoch": ep + 1, "loss": tot / n, "recon": tot_rec / n,
                   "usage": [float(u) for u in (counts > 0).float().mean(1)], "perplexity": ppl.tolist(),
                   "restarted": restarted}
            self.history.append(rec)
            bar.set_postfix(recon=f"{rec['recon']:.2e}", use="/".join(f"{u:.2f}" for u in rec["usage"]))
            if callback is not None:
                callback(rec, self)
            if cfg.log_every and (ep + 1) % cfg.log_every == 0:
                log.info("rqvae epoch %d recon %.3e usage %s ppl %s restarted %d", ep + 1, rec["recon"],
                         np.round(rec["usage"], 3).tolist(), np.round(rec["perplexity"], 1).tolist(), restarted)
        self.fit_seconds = time.time() - t0
        if self.history:
            h = self.history[-1]
            log.info("rqvae done in %.1fs: recon %.3e usage %s perplexity %s", self.fit_seconds, h["recon"],
                     np.round(h["usage"], 3).tolist(), np.round(h["perplexity"], 1).tolist())
        return self

    @torch.no_grad()
    def encode(self, emb, batch_size: int = 8192) -> torch.LongTensor:
        """emb (N, d) -> codes (N, levels) long on CPU, by the frozen encoder + nearest code per level."""
        if self.model is None:
            raise RuntimeError("RQVAETokenizer is not fitted; call fit() or load_state_dict() first")
        self.model.eval()
        x = torch.as_tensor(np.asarray(emb) if not torch.is_tensor(emb) else emb).float()
        out = []
        for xb in x.split(batch_size):
            z = self.model.encoder(xb.to(self.device))
            out.append(self.model.quantize(z)[1].cpu())
        return torch.cat(out) if out else torch.zeros(0, self.cfg.levels, dtype=torch.long)

    @torch.no_grad()
    def reconstruct(self, emb) -> torch.Tensor:
        if self.inference_only:
            raise ValueError("this RQ-VAE tokenizer was saved for inference (encoder and codebooks only: a bundle's "
                             "sid_tokenizer.pt), so it cannot reconstruct. Fix: load the full tokenizer the `sid` "
                             "stage wrote, <data-root>/<dataset>/sid/rqvae_tokenizer.pt.")
        self.model.eval()
        x = torch.as_tensor(np.asarray(emb) if not torch.is_tensor(emb) else emb).float().to(self.device)
        return self.model.decoder(self.model.quantize(self.model.encoder(x))[0]).cpu()

    # ---- persistence: plain tensors + primitives, loadable with torch.load(weights_only=True)
    def state_dict(self, inference_only: bool = False) -> dict:
        """inference_only drops what encoding new items never reads (the decoder and the codebooks' EMA statistics):
        about half the bytes, for bundles. A tokenizer loaded that way has no real decoder, so it always saves so."""
        inference_only = inference_only or self.inference_only
        w = {k: v.detach().cpu() for k, v in self.model.state_dict().items()
             if not (inference_only and _training_only(k))}
        return {"kind": self.kind, "config": asdict(self.cfg), "input_dim": self.input_dim, "weights": w,
                **({"inference_only": True} if inference_only else {})}

    def load_state_dict(self, sd: dict) -> "RQVAETokenizer":
        if sd.get("kind") != self.kind:
            raise ValueError(f"not an rqvae state dict (kind={sd.get('kind')!r})")
        dev = self.cfg.device
        self.cfg = from_dict(RQVAEConfig, {**sd["config"], "device": dev})  # strict: unknown keys are an error
        self._build(int(sd["input_dim"]))
        self.inference_only = bool(sd.get("inference_only", False))
        missing, unexpected = self.model.load_state_dict(sd["weights"], strict=False)
        bad = unexpected + [k for k in missing if not (self.inference_only and _training_only(k))]
        if bad:
            raise ValueError(f"rqvae tokenizer weights do not match its config (missing or unexpected: {bad[:4]}). "
                             "Fix: rebuild the semantic ids (`specgr sid --force`) or restore the file.")
        return self

    @classmethod
    def from_state_dict(cls, sd: dict, device: str = "auto") -> "RQVAETokenizer":
        return cls(RQVAEConfig(device=device)).load_state_dict(sd)
