#!/usr/bin/env python3
"""PEFT's LoRA initialisation, sampled: lora_A and lora_B as get_peft_model
creates them (init_lora_weights=True: A kaiming-uniform with a = sqrt(5),
so uniform on ±1/sqrt(in_features); B zeros) for layers of several widths.

Writes OUT/peft_init/init.safetensors (<layer>.A, <layer>.B as created) and
OUT/peft_init/init.json (each layer's in_features, rank and the bound
1/sqrt(in_features)).
"""
import json
import math
import os
import sys

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file

OUT = sys.argv[1]
LAYERS = {"narrow": (64, 8), "qwen05b": (896, 32), "qwen7b": (3584, 32)}  # in_features, rank


class Net(torch.nn.Module):
    def __init__(self, n_in):
        super().__init__()
        self.q_proj = torch.nn.Linear(n_in, 16, bias=False)

    def forward(self, x):
        return self.q_proj(x)


folder = os.path.join(OUT, "peft_init")
os.makedirs(folder, exist_ok=True)
tensors, meta = {}, {}
for i, (name, (n_in, r)) in enumerate(LAYERS.items()):
    torch.manual_seed(7 + i)
    cfg = LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=["q_proj"], bias="none",
                     use_rslora=False, init_lora_weights=True)
    m = get_peft_model(Net(n_in), cfg)
    lin = m.base_model.model.q_proj
    tensors[name + ".A"] = lin.lora_A["default"].weight.detach().float().contiguous()
    tensors[name + ".B"] = lin.lora_B["default"].weight.detach().float().contiguous()
    meta[name] = {"in_features": n_in, "rank": r, "bound": 1 / math.sqrt(n_in)}
save_file(tensors, os.path.join(folder, "init.safetensors"))
meta["versions"] = {"torch": torch.__version__, "peft": __import__("peft").__version__}
with open(os.path.join(folder, "init.json"), "w") as f:
    json.dump(meta, f, indent=1)
print("wrote peft_init", {k: tuple(v.shape) for k, v in tensors.items()}, flush=True)
