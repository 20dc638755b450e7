#!/usr/bin/env python3
"""Logits of the tiny models (written by models.py) at 64 and 500 tokens, so
that the blocked attention the CPU backend runs on every real training step
(segments of 16 tokens or more) is compared with transformers, and the
config.json transformers 5 writes for the same models.

Reads OUT/models/<name>/f32 and writes, under OUT/long/<name>/:
  golden.safetensors  logits.T64 [2, 64, vocab], logits.T500 [2, 500, vocab]
                      (f32 weights, f32 compute, eager attention)
  golden.json         the input ids and attention masks of both batches
  tf5/config.json     model.config.save_pretrained as the installed
                      transformers (5.x) writes it: rope_parameters, dtype
Each batch has a full row and a row right-padded with eos (masked as keys).
"""
import json
import os
import random
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

OUT = sys.argv[1]
EOS = 2
VOCAB = 512
SHAPES = {"T64": (64, 40), "T500": (500, 301)}  # width, real length of row 2

for ci, name in enumerate(["qwen2_tied", "qwen2_untied", "llama3"]):
    model = AutoModelForCausalLM.from_pretrained(os.path.join(OUT, "models", name, "f32"),
                                                 dtype=torch.float32, attn_implementation="eager").eval()
    folder = os.path.join(OUT, "long", name)
    model.config.save_pretrained(os.path.join(folder, "tf5"))
    r = random.Random(ci)
    tensors, meta = {}, {}
    for key, (T, real) in SHAPES.items():
        ids = [[1] + [r.randrange(3, VOCAB) for _ in range(T - 1)],
               [1] + [r.randrange(3, VOCAB) for _ in range(real - 1)] + [EOS] * (T - real)]
        mask = [[1] * T, [1] * real + [0] * (T - real)]
        with torch.no_grad():
            tensors["logits." + key] = model(input_ids=torch.tensor(ids),
                                             attention_mask=torch.tensor(mask)).logits.float().contiguous()
        meta[key] = {"input_ids": ids, "attention_mask": mask}
    save_file(tensors, os.path.join(folder, "golden.safetensors"))
    meta["versions"] = {"torch": torch.__version__, "transformers": __import__("transformers").__version__}
    with open(os.path.join(folder, "golden.json"), "w") as f:
        json.dump(meta, f)
    print("wrote", name, {k: tuple(v.shape) for k, v in tensors.items()}, flush=True)
