"""PyTorch reference for bench/chain.ts: one scale of the chain, the same weights, inputs and arithmetic.

A plain re-implementation of the encoder-decoder reverse model (the official XTransformer): a
bidirectional encoder over [t, x_t] and a causal decoder over [SOS = 0, x_{t-1}[:-1]] that
cross-attends to it; token embeddings plus learned absolute positions; pre-LayerNorm residual
sub-layers; attention with heads × dim_head 64, q/k/v without bias, output projection with bias,
masked scores filled with -finfo.max; Linear → exact GELU → Linear MLP ×4; a final LayerNorm and a
linear head. Built from the config and loaded with the weights that bench/chain.ts writes to a
safetensors file, so both sides start from the same model and the same inputs.

Workloads:
  train  the scale trainer's step: a batch of x_0 from the data, the forward chain to (x_{t-1}, x_t),
         the posterior q(x_{t-1} | x_t, x_0), loss α_mix·KL + (1-α_mix)·CE with α_mix = 1, backward,
         clip_grad_norm_, AdamW(0.9, 0.95) step, EMA update of the weights;
  model  forward + cross-entropy + backward + AdamW step on a fixed batch (x_t, x_{t-1}).

Usage:
  python3 bench/chain_ref.py --check FILE   one-off: parameter count, key/shape list and outputs
                                            against those stored in FILE (JSON on stdout)
  python3 bench/chain_ref.py --serve FILE   driven by bench/common.ts (`threads I B`, `step NAME`)
"""
import json
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from serve_ref import load_safetensors


# ---------------------------------------------------------------- the model


class Attention(nn.Module):
    def __init__(self, dim, heads, dim_head, causal):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.causal, self.scale = heads, causal, dim_head ** -0.5
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.Linear(inner, dim)

    def forward(self, x, context=None):
        kv = x if context is None else context
        b, n, _ = x.shape
        q, k, v = (f(y).view(b, y.shape[1], self.heads, -1).transpose(1, 2) for f, y in ((self.to_q, x), (self.to_k, kv), (self.to_v, kv)))
        scores = (q @ k.transpose(-2, -1)) * self.scale
        if self.causal:
            i, j = scores.shape[-2:]
            scores = scores.masked_fill(torch.ones(i, j, dtype=torch.bool).triu(j - i + 1), -torch.finfo(scores.dtype).max)
        return self.to_out((scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, -1))


class FeedForward(nn.Module):
    def __init__(self, dim, mult=4):
        super().__init__()
        self.net = nn.Sequential(nn.Sequential(nn.Linear(dim, dim * mult), nn.GELU()), nn.Dropout(0.0), nn.Linear(dim * mult, dim))

    def forward(self, x):
        return self.net(x)


class AttentionLayers(nn.Module):
    """Pre-norm residual sub-layers: (self-attention, [cross-attention,] feed-forward) × depth."""

    def __init__(self, dim, depth, heads, dim_head, causal, cross):
        super().__init__()
        self.kinds = (["self", "cross", "ff"] if cross else ["self", "ff"]) * depth
        self.layers = nn.ModuleList(
            nn.ModuleList([nn.LayerNorm(dim), FeedForward(dim) if k == "ff" else Attention(dim, heads, dim_head, causal and k == "self")])
            for k in self.kinds)

    def forward(self, x, context=None):
        for kind, (norm, fn) in zip(self.kinds, self.layers):
            h = norm(x)
            x = x + (fn(h, context) if kind == "cross" else fn(h))
        return x


class PositionalEmbedding(nn.Module):
    def __init__(self, max_len, dim):
        super().__init__()
        self.emb = nn.Embedding(max_len, dim)


class TokenTransformer(nn.Module):
    def __init__(self, num_tokens, max_len, depth, c, causal, cross):
        super().__init__()
        dim = c["dim"]
        self.token_emb = nn.Embedding(num_tokens, dim)
        self.pos_emb = PositionalEmbedding(max_len, dim)
        self.attn_layers = AttentionLayers(dim, depth, c["heads"], c["dim_head"], causal, cross)
        self.norm = nn.LayerNorm(dim)
        self.to_logits = nn.Linear(dim, num_tokens)

    def forward(self, ids, context=None, embeddings=False):
        x = self.token_emb(ids) + self.pos_emb.emb.weight[: ids.shape[1]]
        h = self.norm(self.attn_layers(x, context))
        return h if embeddings else self.to_logits(h)


class XTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        n = c["tokens"]
        self.encoder = TokenTransformer(max(c["K"], c["T"] + 1), 1 + n, c["encoder_depth"], c, causal=False, cross=False)
        self.decoder = TokenTransformer(c["K"], n, c["decoder_depth"], c, causal=True, cross=True)


class Denoiser(nn.Module):
    """p(x_{t-1} | x_t) of scale t: encoder ids [t, x_t], decoder ids [SOS = 0, x_{t-1}[:-1]]."""

    def __init__(self, c):
        super().__init__()
        self.t = c["t"]
        self.transformer = XTransformer(c)

    def logits(self, xt, xtm1):
        b = xt.shape[0]
        src = torch.cat([torch.full((b, 1), self.t, dtype=torch.long), xt], 1)
        tgt = torch.cat([torch.zeros((b, 1), dtype=torch.long), xtm1[:, :-1]], 1)
        return self.transformer.decoder(tgt, context=self.transformer.encoder(src, embeddings=True))


# ---------------------------------------------------------------- diffusion and training


def forward_chain(x0, c):
    """x_0, x_1, …, x_t: each step redraws every token with probability β_s, uniformly over K codes."""
    xs = [x0]
    for s in range(1, c["t"] + 1):
        x = xs[-1]
        xs.append(torch.where(torch.rand(x.shape) < c["beta"][s], torch.randint(0, c["K"], x.shape), x))
    return xs


def posterior(x0, xt, c):
    t, K = c["t"], c["K"]
    ac, a = c["alphacum"][t - 1], c["alpha"][t]
    u = (F.one_hot(x0, K).float() * ac + (1 - ac) / K) * (F.one_hot(xt, K).float() * a + (1 - a) / K)
    return u / u.sum(-1, keepdim=True)


def denoising_loss(logits, xtm1, post, alpha_mix):
    hard = F.cross_entropy(logits.transpose(1, 2), xtm1, reduction="none").mean(-1).mean()
    if post is None:
        return hard
    soft = F.kl_div(logits.log_softmax(-1), post, reduction="none").sum(-1).mean(-1).mean()
    return soft * alpha_mix + hard * (1 - alpha_mix)


class EMA:
    """Moving average of the weights; the decay warms up as min(decay, (1 + n) / (10 + n))."""

    def __init__(self, model, decay):
        self.params = list(model.parameters())
        self.shadow = [p.detach().clone() for p in self.params]
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self):
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for s, p in zip(self.shadow, self.params):
            s.lerp_(p, 1 - d)


def build(path):
    tensors, meta = load_safetensors(path)
    c = json.loads(meta["config"])
    model = Denoiser(c)
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}, strict=False)
    return model, c, tensors


def check(path):
    model, c, tensors = build(path)
    x0, xtm1, xt = tensors["input.x0"], tensors["input.xtm1"], tensors["input.xt"]
    logits = model.logits(xt, xtm1)
    loss = denoising_loss(logits, xtm1, posterior(x0, xt, c), 1.0)
    loss.backward()
    grad_norm = math.sqrt(sum(p.grad.square().sum().item() for p in model.parameters() if p.grad is not None))
    rel = lambda a, b: abs(a - b) / abs(b)
    print(json.dumps({
        "parameters": sum(p.numel() for p in model.parameters()),
        "keys": {k: list(v.shape) for k, v in model.state_dict().items()},
        "logits_max_abs_diff": (logits - tensors["check.logits"]).abs().max().item(),
        "loss_rel_diff": rel(loss.item(), tensors["check.loss"].item()),
        "grad_norm_rel_diff": rel(grad_norm, tensors["check.grad_norm"].item()),
    }))


def serve_workloads(path):
    from serve_ref import serve

    model, c, tensors = build(path)
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=c["lr"], betas=(0.9, 0.95), weight_decay=c["weight_decay"])
    ema = EMA(model, c["ema_decay"])
    data, xtm1_fixed, xt_fixed = tensors["input.data"], tensors["input.xtm1"], tensors["input.xt"]
    t = c["t"]

    def train():
        x0 = data[torch.randint(0, data.shape[0], (c["batch"],))]
        with torch.no_grad():
            xs = forward_chain(x0, c)
        xtm1, xt = xs[t - 1], xs[t]
        logits = model.logits(xt, xtm1)
        with torch.no_grad():
            post = posterior(x0, xt, c)
        loss = denoising_loss(logits, xtm1, post, 1.0)
        loss.backward()
        loss.item()
        torch.nn.utils.clip_grad_norm_(params, c["grad_clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema.update()

    def model_step():
        denoising_loss(model.logits(xt_fixed, xtm1_fixed), xtm1_fixed, None, 0.0).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    serve({"train": train, "model": model_step})


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("--check", "--serve"):
        sys.exit(__doc__)
    torch.manual_seed(0)
    (check if sys.argv[1] == "--check" else serve_workloads)(sys.argv[2])
