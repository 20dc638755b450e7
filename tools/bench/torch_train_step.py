#!/usr/bin/env python3
"""Times one LoRA training step in PyTorch on the CPU, for comparison with
nn's BenchmarkTrainStep (nn/bench_test.go).

The model is the benchmark's: Qwen2-style, hidden 512, 8 layers, 8 heads
and 4 key/value heads of 64, MLP 1408, vocabulary 32000, q/k/v biases, an
untied output layer, random float32 weights. LoRA of rank 32 and scale 2
adapts q_proj and v_proj: y = x·Wᵀ + b + 2·(x·Aᵀ)·Bᵀ, with only A and B
trained. A step is one forward pass over 256 tokens, the summed next-token
cross-entropy, and the backward pass; the script prints the median step
time over several steps after a warm-up, as tokens per second.

Debian's python3-torch calls whatever libblas.so.3 the system selects, by
default the slow reference BLAS; point LD_LIBRARY_PATH at OpenBLAS (see
README.md). OpenMP threads that spin while waiting take the cores from
OpenBLAS's own threads, so the script makes them sleep (OMP_WAIT_POLICY,
unless set) before torch starts OpenMP.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402  (after OMP_WAIT_POLICY)
import torch.nn.functional as F  # noqa: E402

HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM = 512, 8, 8, 4, 64
INTERMEDIATE, VOCAB, EPS, ROPE_THETA = 1408, 32000, 1e-6, 10000.0
RANK, SCALE, TOKENS = 32, 2.0, 256


def weight(*shape):
    return torch.randn(*shape) * 0.02


class Linear:
    """A frozen linear layer, optionally with a bias and a trained LoRA."""

    def __init__(self, inp, out, bias=False, lora=False):
        self.w = weight(out, inp)
        self.b = weight(out) if bias else None
        self.a = weight(RANK, inp).requires_grad_() if lora else None
        self.lb = torch.zeros(out, RANK, requires_grad=True) if lora else None

    def __call__(self, x):
        y = F.linear(x, self.w, self.b)
        if self.a is not None:
            y = y + SCALE * F.linear(F.linear(x, self.a), self.lb)
        return y


def rms_norm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class Block:
    def __init__(self):
        self.norm1 = torch.ones(HIDDEN)
        self.norm2 = torch.ones(HIDDEN)
        self.q = Linear(HIDDEN, HEADS * HEAD_DIM, bias=True, lora=True)
        self.k = Linear(HIDDEN, KV_HEADS * HEAD_DIM, bias=True)
        self.v = Linear(HIDDEN, KV_HEADS * HEAD_DIM, bias=True, lora=True)
        self.o = Linear(HEADS * HEAD_DIM, HIDDEN)
        self.gate = Linear(HIDDEN, INTERMEDIATE)
        self.up = Linear(HIDDEN, INTERMEDIATE)
        self.down = Linear(INTERMEDIATE, HIDDEN)

    def __call__(self, x, cos, sin, mask):
        t = x.shape[0]
        h = rms_norm(x, self.norm1)
        q = self.q(h).view(t, HEADS, HEAD_DIM).transpose(0, 1)
        k = self.k(h).view(t, KV_HEADS, HEAD_DIM).transpose(0, 1)
        v = self.v(h).view(t, KV_HEADS, HEAD_DIM).transpose(0, 1)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        k = k.repeat_interleave(HEADS // KV_HEADS, dim=0)
        v = v.repeat_interleave(HEADS // KV_HEADS, dim=0)
        scores = q @ k.transpose(1, 2) / HEAD_DIM**0.5 + mask
        attn = (scores.softmax(-1) @ v).transpose(0, 1).reshape(t, HEADS * HEAD_DIM)
        x = x + self.o(attn)
        h = rms_norm(x, self.norm2)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model:
    def __init__(self):
        self.embed = weight(VOCAB, HIDDEN)
        self.blocks = [Block() for _ in range(LAYERS)]
        self.norm = torch.ones(HIDDEN)
        self.lm_head = Linear(HIDDEN, VOCAB)

    def params(self):
        return [p for b in self.blocks for p in (b.q.a, b.q.lb, b.v.a, b.v.lb)]

    def loss(self, ids):
        t = ids.shape[0]
        pos = torch.arange(t, dtype=torch.float32)
        inv = ROPE_THETA ** (-torch.arange(0, HEAD_DIM, 2, dtype=torch.float32) / HEAD_DIM)
        angles = torch.outer(pos, inv)
        angles = torch.cat((angles, angles), dim=-1)
        cos, sin = angles.cos(), angles.sin()
        mask = torch.full((t, t), float("-inf")).triu(1)
        x = self.embed[ids]
        for b in self.blocks:
            x = b(x, cos, sin, mask)
        logits = self.lm_head(rms_norm(x, self.norm))
        return F.cross_entropy(logits[:-1], ids[1:], reduction="sum")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--steps", type=int, default=7, help="timed steps (default 7)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    args = p.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = Model()
    # The benchmark's prompt: token i is 1 + (i·7919 mod 31000).
    ids = torch.tensor([1 + (i * 7919) % 31000 for i in range(TOKENS)])
    times = []
    for step in range(args.warmup + args.steps):
        for p in model.params():
            p.grad = None
        start = time.perf_counter()
        loss = model.loss(ids)
        (loss / TOKENS).backward()
        elapsed = time.perf_counter() - start
        if step >= args.warmup:
            times.append(elapsed)
    median = statistics.median(times)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}: "
          f"median step {median * 1e3:.1f} ms over {len(times)} steps, "
          f"{TOKENS / median:.1f} tokens/s")


if __name__ == "__main__":
    main()
