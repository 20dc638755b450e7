#!/usr/bin/env python3
"""Tiny random Qwen2 and Llama models and their reference outputs.

For every model this writes, under OUT/models/<name>/:
  f32/   config.json + model.safetensors (float32 weights)
  bf16/  config.json + model.safetensors (the same weights rounded to bfloat16)
  golden.safetensors  logits:
    f32.logits          [2, T, vocab]  padded batch, f32 model, f32 compute
    bf16.logits_f32     [2, T, vocab]  bf16 weights upcast, f32 compute
    bf16.logits_bf16    [2, T, vocab]  bf16 weights, bf16 compute (what HF runs)
  golden.json  input ids, attention mask, greedy generations.

config.json is written by this script in the layout of transformers 4.52
(rope_theta / rope_scaling keys), the layout of published checkpoints, so the
fixtures do not depend on the installed transformers' serialisation.
Every model-defining value is set explicitly below.
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

OUT = sys.argv[1]
torch.manual_seed(0)

COMMON = dict(
    vocab_size=512,
    hidden_size=64,
    intermediate_size=128,
    num_attention_heads=4,
    num_key_value_heads=2,
    rms_norm_eps=1e-6,
    max_position_embeddings=512,
    hidden_act="silu",
    bos_token_id=1,
    eos_token_id=2,
    initializer_range=0.1,
    attention_dropout=0.0,
    use_cache=True,
)

MODELS = {
    # Qwen2 with tied embeddings (as Qwen2.5-0.5B/1.5B), q/k/v biases.
    "qwen2_tied": ("qwen2", dict(COMMON, num_hidden_layers=2, rope_theta=10000.0,
                                 tie_word_embeddings=True, use_sliding_window=False)),
    # Qwen2 with a separate LM head (as Qwen2.5-7B), 3 layers.
    "qwen2_untied": ("qwen2", dict(COMMON, num_hidden_layers=3, rope_theta=1000000.0,
                                   tie_word_embeddings=False, use_sliding_window=False)),
    # Llama 3.2 style: llama3 rope scaling, explicit head_dim != hidden/heads, untied.
    "llama3": ("llama", dict(COMMON, num_hidden_layers=2, head_dim=32, rope_theta=500000.0,
                             rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                               high_freq_factor=4.0, original_max_position_embeddings=64),
                             attention_bias=False, mlp_bias=False, tie_word_embeddings=False)),
}


def make(arch, cfg):
    if arch == "qwen2":
        c = Qwen2Config(**cfg)
        c._attn_implementation = "eager"
        m = Qwen2ForCausalLM(c)
    else:
        c = LlamaConfig(**cfg)
        c._attn_implementation = "eager"
        m = LlamaForCausalLM(c)
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, p in m.named_parameters():
            # Norm weights near 1 and non-zero biases, so that every weight matters.
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return m.eval()


def config_json(arch, cfg, dtype):
    d = dict(cfg)
    d["model_type"] = arch
    d["architectures"] = ["Qwen2ForCausalLM" if arch == "qwen2" else "LlamaForCausalLM"]
    d["torch_dtype"] = dtype
    d.pop("use_cache", None)
    if arch == "qwen2":
        d["max_window_layers"] = d["num_hidden_layers"]
        d["sliding_window"] = None
    return d


def save(model, arch, cfg, dtype, folder, shard=False):
    os.makedirs(folder, exist_ok=True)
    sd = {k: v.detach().to(getattr(torch, dtype)).contiguous()
          for k, v in model.state_dict().items()}
    if cfg.get("tie_word_embeddings"):
        sd.pop("lm_head.weight", None)
    if shard:
        # Two shards and an index, as save_pretrained writes for large models.
        names = sorted(sd)
        half = len(names) // 2
        parts = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
        wm = {}
        for fname, keys in parts.items():
            save_file({k: sd[k] for k in keys}, os.path.join(folder, fname), metadata={"format": "pt"})
            wm.update({k: fname for k in keys})
        with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": sum(v.numel() * v.element_size() for v in sd.values())},
                       "weight_map": wm}, f, indent=2)
    else:
        save_file(sd, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config_json(arch, cfg, dtype), f, indent=2)


def greedy(model, prompt, n):
    """Greedy decoding written out (no generate() defaults involved): argmax of
    the last position, stop after the eos id (not included) or n tokens."""
    ids = list(prompt)
    out = []
    with torch.no_grad():
        for _ in range(n):
            logits = model(torch.tensor([ids])).logits[0, -1].float()
            t = int(torch.argmax(logits))
            if t == COMMON["eos_token_id"]:
                break
            out.append(t)
            ids.append(t)
    return out


# A padded batch: two sequences, the second right-padded with eos (as SEAL pads).
T = 12
SEQ_A = [1, 17, 300, 45, 46, 99, 511, 3, 250, 251, 7, 8]
SEQ_B = [1, 400, 22, 23, 24, 150, 9]
PAD = COMMON["eos_token_id"]
IDS = [SEQ_A, SEQ_B + [PAD] * (T - len(SEQ_B))]
MASK = [[1] * T, [1] * len(SEQ_B) + [0] * (T - len(SEQ_B))]
PROMPTS = [[1, 10, 20, 30], [1, 5, 6, 7, 8, 9, 100, 200, 300]]
NEW_TOKENS = 24

for name, (arch, cfg) in MODELS.items():
    base = os.path.join(OUT, "models", name)
    model = make(arch, cfg)
    save(model, arch, cfg, "float32", os.path.join(base, "f32"), shard=(name == "qwen2_untied"))
    save(model, arch, cfg, "bfloat16", os.path.join(base, "bf16"))
    ids = torch.tensor(IDS)
    mask = torch.tensor(MASK)
    tensors = {}
    gen = {}
    with torch.no_grad():
        tensors["f32.logits"] = model(input_ids=ids, attention_mask=mask).logits.float().contiguous()
        gen["f32"] = [greedy(model, p, NEW_TOKENS) for p in PROMPTS]
        mb = make(arch, cfg)
        mb.load_state_dict(model.state_dict())
        mb = mb.to(torch.bfloat16)
        mf = make(arch, cfg)
        mf.load_state_dict({k: v.to(torch.float32) for k, v in mb.state_dict().items()})
        tensors["bf16.logits_f32"] = mf(input_ids=ids, attention_mask=mask).logits.float().contiguous()
        gen["bf16_f32"] = [greedy(mf, p, NEW_TOKENS) for p in PROMPTS]
        tensors["bf16.logits_bf16"] = mb(input_ids=ids, attention_mask=mask).logits.float().contiguous()
        gen["bf16_bf16"] = [greedy(mb, p, NEW_TOKENS) for p in PROMPTS]
    save_file(tensors, os.path.join(base, "golden.safetensors"))
    with open(os.path.join(base, "golden.json"), "w") as f:
        json.dump({"input_ids": IDS, "attention_mask": MASK, "prompts": PROMPTS, "max_new_tokens": NEW_TOKENS,
                   "eos_token_id": COMMON["eos_token_id"], "greedy": gen,
                   "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__}},
                  f, indent=1)
    print("wrote", name, flush=True)
