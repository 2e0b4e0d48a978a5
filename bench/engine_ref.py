"""PyTorch reference for bench/engine.ts: the same two workloads, same shapes and arithmetic.

Usage: python3 bench/engine_ref.py --serve   (driven by bench/common.ts: `threads I B`, `step NAME`)
"""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F
from serve_ref import serve

torch.manual_seed(0)

D, H, L, MLP, T, B, V = 256, 8, 4, 1024, 64, 32, 512


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.qkv, self.proj = nn.Linear(D, 3 * D), nn.Linear(D, D)
        self.fc1, self.fc2 = nn.Linear(D, MLP), nn.Linear(MLP, D)

    def forward(self, x, mask):
        b, t, _ = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, H, D // H).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-2, -1)) * (1 / math.sqrt(D // H)) + mask
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, D)
        x = x + self.proj(y)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok, self.pos = nn.Embedding(V, D), nn.Parameter(torch.zeros(1, T, D))
        self.blocks = nn.ModuleList([Block() for _ in range(L)])
        self.ln, self.head = nn.LayerNorm(D), nn.Linear(D, V, bias=False)

    def forward(self, idx, mask):
        x = self.tok(idx) + self.pos
        for blk in self.blocks:
            x = blk(x, mask)
        return self.head(self.ln(x))


model = GPT()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.01)
idx = torch.randint(0, V, (B, T))
tgt = torch.randint(0, V, (B, T))
mask = torch.full((T, T), float("-inf")).triu(1)


def transformer_step():
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(idx, mask).view(-1, V), tgt.view(-1)).backward()
    opt.step()


conv = nn.Conv2d(64, 64, 3, padding=1)
x = torch.randn(16, 64, 32, 32)


def conv_step():
    conv.zero_grad(set_to_none=True)
    conv(x).square().mean().backward()


serve({"transformer": transformer_step, "conv": conv_step})
