"""PyTorch reference for bench/vqgan.ts: the same VQGAN, weights, inputs and arithmetic.

A plain re-implementation of taming-transformers' first stage (Encoder, Decoder, ResnetBlock,
single-head AttnBlock, asymmetric-padded Downsample, nearest Upsample, GroupNorm(32, eps 1e-6),
swish, quant_conv / post_quant_conv, the legacy VectorQuantizer with straight-through gradients),
built from the config and loaded with the weights that bench/vqgan.ts writes to a safetensors file,
so both sides start from the same model and the same inputs.

Workloads:
  encode  image batch → token indices, no grad;
  decode  token indices → images, no grad;
  train   one autoencoder step: L1 reconstruction + codebook loss, backward, Adam(0.5, 0.9) step
          (no discriminator, no perceptual loss: the VQGAN trainer's step before disc_start).

Usage:
  python3 bench/vqgan_ref.py --check FILE   one-off: parameter count, key/shape list and outputs
                                            against those stored in FILE (JSON on stdout)
  python3 bench/vqgan_ref.py --serve FILE   driven by bench/common.ts (`threads I B`, `step NAME`)
"""
import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from serve_ref import load_safetensors


# ---------------------------------------------------------------- the model


def normalize(channels, groups):
    return nn.GroupNorm(groups, channels, eps=1e-6, affine=True)


def swish(x):
    # taming writes x * torch.sigmoid(x); F.silu is the same function as one fused kernel, which is
    # what the TypeScript side calls (aten::silu), so both sides run the same kernels.
    return F.silu(x)


class ResnetBlock(nn.Module):
    """norm → swish → conv3 → norm → swish → dropout → conv3, plus the input (1×1 shortcut when widths differ)."""

    def __init__(self, cin, cout, dropout, groups):
        super().__init__()
        self.norm1 = normalize(cin, groups)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = normalize(cout, groups)
        self.dropout = dropout
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)
        else:
            self.nin_shortcut = None

    def forward(self, x):
        h = self.conv1(swish(self.norm1(x)))
        h = swish(self.norm2(h))
        if self.dropout > 0:
            h = F.dropout(h, self.dropout, self.training)
        h = self.conv2(h)
        skip = x if self.nin_shortcut is None else self.nin_shortcut(x)
        return skip + h


class AttnBlock(nn.Module):
    """One head over all H·W positions; 1×1 convs for q, k, v and the output; scores scaled by c^-1/2."""

    def __init__(self, c, groups):
        super().__init__()
        self.norm = normalize(c, groups)
        self.q, self.k, self.v = nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        h = self.norm(x)
        b, c, hh, ww = h.shape
        n = hh * ww
        q = self.q(h).reshape(b, c, n).permute(0, 2, 1)  # [B, N, C]
        k = self.k(h).reshape(b, c, n)  # [B, C, N]
        v = self.v(h).reshape(b, c, n)  # [B, C, N]
        attn = torch.softmax(torch.bmm(q, k) * c ** -0.5, dim=2)  # [B, query, key]
        out = torch.bmm(v, attn.permute(0, 2, 1)).reshape(b, c, hh, ww)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    """`block.{i}` ResnetBlocks, each followed by `attn.{i}` when present, then an optional resampler."""

    def __init__(self):
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()

    def forward(self, h):
        for i, blk in enumerate(self.block):
            h = blk(h)
            if len(self.attn) > 0:
                h = self.attn[i](h)
        if hasattr(self, "downsample"):
            h = self.downsample(h)
        if hasattr(self, "upsample"):
            h = self.upsample(h)
        return h


class Mid(nn.Module):
    def __init__(self, c, dropout, groups):
        super().__init__()
        self.block_1 = ResnetBlock(c, c, dropout, groups)
        self.attn_1 = AttnBlock(c, groups)
        self.block_2 = ResnetBlock(c, c, dropout, groups)

    def forward(self, x):
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder(nn.Module):
    def __init__(self, dd):
        super().__init__()
        g, ch, mults = dd.get("normGroups", 32), dd["ch"], dd["chMult"]
        self.conv_in = nn.Conv2d(dd["inChannels"], ch, 3, padding=1)
        self.down = nn.ModuleList()
        res, width = dd["resolution"], ch
        for i, m in enumerate(mults):
            level = Level()
            for _ in range(dd["numResBlocks"]):
                level.block.append(ResnetBlock(width, ch * m, dd["dropout"], g))
                width = ch * m
                if res in dd["attnResolutions"]:
                    level.attn.append(AttnBlock(width, g))
            if i != len(mults) - 1:
                level.downsample = Downsample(width)
                res //= 2
            self.down.append(level)
        self.mid = Mid(width, dd["dropout"], g)
        self.norm_out = normalize(width, g)
        zc = dd["zChannels"] * (2 if dd["doubleZ"] else 1)
        self.conv_out = nn.Conv2d(width, zc, 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        h = self.mid(h)
        return self.conv_out(swish(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, dd):
        super().__init__()
        g, ch, mults = dd.get("normGroups", 32), dd["ch"], dd["chMult"]
        width = ch * mults[-1]
        res = dd["resolution"] // 2 ** (len(mults) - 1)
        self.conv_in = nn.Conv2d(dd["zChannels"], width, 3, padding=1)
        self.mid = Mid(width, dd["dropout"], g)
        levels = [None] * len(mults)
        for i in reversed(range(len(mults))):  # coarsest first
            level = Level()
            for _ in range(dd["numResBlocks"] + 1):
                level.block.append(ResnetBlock(width, ch * mults[i], dd["dropout"], g))
                width = ch * mults[i]
                if res in dd["attnResolutions"]:
                    level.attn.append(AttnBlock(width, g))
            if i != 0:
                level.upsample = Upsample(width)
                res *= 2
            levels[i] = level
        self.up = nn.ModuleList(levels)  # up.0 is the full-resolution level
        self.norm_out = normalize(width, g)
        self.conv_out = nn.Conv2d(width, dd["outCh"], 3, padding=1)

    def forward(self, z):
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(swish(self.norm_out(h)))


class VectorQuantizer(nn.Module):
    """Nearest codebook row by argmin ‖z‖² + ‖e‖² − 2z·e; straight-through; legacy loss (β on the codebook term)."""

    def __init__(self, n_e, e_dim, beta):
        super().__init__()
        self.n_e, self.e_dim, self.beta = n_e, e_dim, beta
        self.embedding = nn.Embedding(n_e, e_dim)

    def forward(self, z):
        b, _, h, w = z.shape
        z = z.permute(0, 2, 3, 1).contiguous()  # [B, h, w, C]
        flat = z.view(-1, self.e_dim)
        e = self.embedding.weight
        d = flat.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * flat @ e.t()
        codes = d.argmin(1)
        zq = F.embedding(codes, e).view(z.shape)
        loss = (zq.detach() - z).pow(2).mean() + self.beta * (zq - z.detach()).pow(2).mean()
        zq = (z + (zq - z).detach()).permute(0, 3, 1, 2).contiguous()
        return zq, loss, codes.view(b, h, w)

    def codebook_entry(self, indices):  # [B, h, w] → [B, C, h, w]
        return F.embedding(indices, self.embedding.weight).permute(0, 3, 1, 2).contiguous()


class VQModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        dd = cfg["ddconfig"]
        assert cfg["legacy"], "the benchmark reference implements the legacy quantizer loss only"
        self.encoder = Encoder(dd)
        self.decoder = Decoder(dd)
        self.quantize = VectorQuantizer(cfg["nEmbed"], cfg["embedDim"], cfg["beta"])
        self.quant_conv = nn.Conv2d(dd["zChannels"], cfg["embedDim"], 1)
        self.post_quant_conv = nn.Conv2d(cfg["embedDim"], dd["zChannels"], 1)

    def encode(self, x):
        return self.quantize(self.quant_conv(self.encoder(x)))

    def decode(self, zq):
        return self.decoder(self.post_quant_conv(zq))

    def decode_indices(self, indices):
        return self.decode(self.quantize.codebook_entry(indices))

    def forward(self, x):
        zq, qloss, _ = self.encode(x)
        return self.decode(zq), qloss


# ---------------------------------------------------------------- set-up from the file bench/vqgan.ts wrote


def build(path):
    tensors, meta = load_safetensors(path)
    train_cfg = json.loads(meta["train"])
    model = VQModel(train_cfg["model"])
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(weights, strict=True)
    model.train()
    return model, train_cfg, tensors


def describe(model):
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "keys": {k: list(v.shape) for k, v in model.state_dict().items()},
    }


def train_cfg_codebook_weight(cfg):
    return float(cfg["loss"]["codebookWeight"])


def check(path):
    """Parameter count, keys and shapes, and the outputs stored by bench/vqgan.ts recomputed here."""
    torch.manual_seed(0)
    model, cfg, t = build(path)
    out = describe(model)
    x = t["check.x"]
    with torch.no_grad():
        zq, qloss, codes = model.encode(x)
        rec = model.decode(zq)
        dec = model.decode_indices(t["check.indices"])
    out["rec_max_abs_diff"] = (rec - t["check.rec"]).abs().max().item()
    out["qloss_rel_diff"] = abs(qloss.item() - t["check.qloss"].item()) / abs(t["check.qloss"].item())
    out["codes_mismatch"] = int((codes != t["check.codes"]).sum().item())
    out["dec_max_abs_diff"] = (dec - t["check.dec"]).abs().max().item()
    # The training objective's gradient: L1 + codebook loss, backward, global gradient norm.
    model.zero_grad(set_to_none=True)
    rec, qloss = model(x)
    loss = (x - rec).abs().mean() + train_cfg_codebook_weight(cfg) * qloss
    loss.backward()
    gn = torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters() if p.grad is not None)).item()
    out["loss_rel_diff"] = abs(loss.item() - t["check.loss"].item()) / abs(t["check.loss"].item())
    out["grad_norm_rel_diff"] = abs(gn - t["check.grad_norm"].item()) / t["check.grad_norm"].item()
    print(json.dumps(out), flush=True)


def serve_workloads(path):
    from serve_ref import serve

    torch.manual_seed(0)
    model, cfg, t = build(path)
    x_train, x_enc, idx_dec = t["input.train"], t["input.encode"], t["input.decode"]
    w = train_cfg_codebook_weight(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"], betas=(0.5, 0.9), eps=1e-8, weight_decay=0)
    print(f"python reference: {describe(model)['parameters']:,} parameters, torch {torch.__version__}", file=sys.stderr, flush=True)

    def encode():
        with torch.no_grad():
            _, _, codes = model.encode(x_enc)

    def decode():
        with torch.no_grad():
            model.decode_indices(idx_dec)

    def train():
        opt.zero_grad(set_to_none=True)
        rec, qloss = model(x_train)
        l1 = (x_train - rec).abs().mean()
        loss = l1 + w * qloss
        loss.backward()
        opt.step()
        # the logged terms, as the TypeScript trainer reads them
        l1.item(), qloss.item(), loss.item()

    serve({"encode": encode, "decode": decode, "train": train})


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("--check", "--serve"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    (check if sys.argv[1] == "--check" else serve_workloads)(sys.argv[2])
