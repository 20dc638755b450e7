#!/usr/bin/env python3
"""Loads an adapter written by seal-ttt (tools/golden/peftsave) with PEFT's
PeftModel.from_pretrained and records the adapted model's logits on the fixed
padded batch of models.py, so a Go test can check that PEFT reads our files
the way we do. Usage: peft_roundtrip.py OUT (after models.py and peftsave)."""
import json
import os
import sys

import torch
from peft import PeftModel
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

OUT = sys.argv[1]
folder = os.path.join(OUT, "roundtrip")
probe = json.load(open(os.path.join(OUT, "models", "qwen2_untied", "golden.json")))
base = AutoModelForCausalLM.from_pretrained(os.path.join(OUT, "models", "qwen2_untied", "f32"),
                                            dtype=torch.float32, attn_implementation="eager")
model = PeftModel.from_pretrained(base, os.path.join(folder, "adapter")).eval()
with torch.no_grad():
    logits = model(input_ids=torch.tensor(probe["input_ids"]),
                   attention_mask=torch.tensor(probe["attention_mask"])).logits.float().contiguous()
save_file({"logits": logits}, os.path.join(folder, "peft_logits.safetensors"))
print("wrote roundtrip", tuple(logits.shape), flush=True)
