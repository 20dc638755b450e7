#!/usr/bin/env python3
"""LoRA fine-tuning references: PEFT adapters trained with the arithmetic of
transformers 4.52.4's Trainer, written out step by step.

The loop below is the Trainer's, made explicit so that the fixtures mean
SEAL's semantics whatever transformers version runs this script:
  - optimizer torch.optim.AdamW(betas=(0.9, 0.999), eps=1e-8, weight_decay=0),
    over the trainable (LoRA) parameters only;
  - learning rate linear from lr to 0 over N optimizer steps, no warmup:
    step t (1-based) uses lr·(N−t+1)/N;
  - batches of batch_size rows in dataset order (no shuffling here, so the Go
    side can follow the same order), cut into windows of
    gradient_accumulation_steps batches per epoch, the last window of an
    epoch possibly shorter; the schedule's length is
    N = epochs · max(floor(batches / accumulation), 1)
    (set_initial_training_values), and training stops once N optimizer
    steps are taken (DefaultFlowCallback), so when the accumulation does
    not divide the batches the last epochs are cut short;
  - loss of a micro-batch: next-token cross-entropy summed over labels ≠ -100
    (labels shifted left by one), divided by num_items_in_batch = the number
    of UNSHIFTED labels ≠ -100 in the whole window (4.52.4 counts them
    unshifted); the micro-batch losses are backpropagated and summed;
  - gradients clipped to global norm 1.0 (the pre-clip norm is recorded);
  - float32 throughout, on the CPU, dropout 0.
Data follows SEAL's TTT server: max_length padding pads with eos to
max_seq_length, keeps pad labels in the loss and masks pads as keys; longest
padding pads each batch to its longest row and ignores pad labels;
end_mask_substring sets labels[0 : i+len(sub)] = -100 at the first match.

For each case, OUT/lora/<case>/ gets initial/ and final/ (PEFT adapters as
save_pretrained writes them), golden.json (data rows, hyperparameters, per-step
loss, lr and grad norm) and logits.safetensors (the trained model's logits on
a fixed padded batch).
"""
import json
import math
import os
import random
import sys

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

OUT = sys.argv[1]
EOS = 2
VOCAB = 512

torch.use_deterministic_algorithms(True)


def sequences(seed, lengths, embed=None):
    """Random token sequences (ids 3..511) of the given lengths; embed, if
    given, places that id run inside every other sequence."""
    r = random.Random(seed)
    out = []
    for i, n in enumerate(lengths):
        s = [r.randrange(3, VOCAB) for _ in range(n)]
        if embed and i % 2 == 0 and n > len(embed) + 3:
            at = r.randrange(1, n - len(embed))
            s[at:at + len(embed)] = embed
        out.append(s)
    return out


def rows_for(seqs, max_len, padding, mask_ids):
    rows = []
    for s in seqs:
        ids = s[:max_len]
        labels = list(ids)
        if mask_ids:
            m = len(mask_ids)
            for i in range(len(ids) - m + 1):
                if ids[i:i + m] == mask_ids:
                    labels[:i + m] = [-100] * (i + m)
                    break
        att = [1] * len(ids)
        if padding == "max_length":
            pad = max_len - len(ids)
            ids, labels, att = ids + [EOS] * pad, labels + [EOS] * pad, att + [0] * pad
        rows.append({"input_ids": ids, "labels": labels, "attention_mask": att})
    return rows


def collate(batch, padding):
    if padding == "longest":
        L = max(len(r["input_ids"]) for r in batch)
        batch = [{"input_ids": r["input_ids"] + [EOS] * (L - len(r["input_ids"])),
                  "labels": r["labels"] + [-100] * (L - len(r["labels"])),
                  "attention_mask": r["attention_mask"] + [0] * (L - len(r["attention_mask"]))} for r in batch]
    return {k: torch.tensor([r[k] for r in batch]) for k in ("input_ids", "labels", "attention_mask")}


def micro_loss(model, b, n_items):
    logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits.float()
    labels = torch.nn.functional.pad(b["labels"], (0, 1), value=-100)[:, 1:]
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                           ignore_index=-100, reduction="sum")
    return ce / n_items


CASES = {
    # name: base model, data, hyperparameters
    "qwen2_bs1": dict(model="qwen2_tied", lengths=[9, 14, 6], max_len=12, padding="max_length",
                      bs=1, ga=1, epochs=3, lr=1e-2, r=4, alpha=8, targets=["q_proj", "v_proj"]),
    "qwen2_bs2_ga2": dict(model="qwen2_untied", lengths=[5, 11, 8, 3, 10], max_len=10, padding="max_length",
                          bs=2, ga=2, epochs=2, lr=5e-3, r=8, alpha=16, targets=["q_proj", "v_proj"]),
    "qwen2_longest": dict(model="qwen2_untied", lengths=[5, 11, 8, 3, 10], max_len=10, padding="longest",
                          bs=2, ga=2, epochs=2, lr=5e-3, r=8, alpha=16, targets=["q_proj", "v_proj"]),
    "qwen2_endmask": dict(model="qwen2_tied", lengths=[12, 9, 13, 7], max_len=14, padding="max_length",
                          bs=1, ga=2, epochs=2, lr=1e-2, r=4, alpha=4, targets=["q_proj", "v_proj"],
                          mask=[7, 8, 9]),
    "qwen2_all_linear": dict(model="qwen2_tied", lengths=[10, 7, 12], max_len=12, padding="longest",
                             bs=1, ga=1, epochs=2, lr=1e-2, r=4, alpha=8,
                             targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
    "llama3_bs1": dict(model="llama3", lengths=[11, 8, 13], max_len=12, padding="max_length",
                       bs=1, ga=1, epochs=3, lr=1e-2, r=4, alpha=8, targets=["q_proj", "v_proj"]),
    # 5 batches, accumulation 2: windows of 2, 2, 1 batches per epoch, but
    # the schedule (and the run) is 3 · floor(5/2) = 6 steps: two epochs.
    "qwen2_bs1_ga2_odd": dict(model="qwen2_tied", lengths=[9, 4, 12, 7, 10], max_len=12, padding="max_length",
                              bs=1, ga=2, epochs=3, lr=1e-2, r=4, alpha=8, targets=["q_proj", "v_proj"]),
}

probe = json.load(open(os.path.join(OUT, "models", "qwen2_tied", "golden.json")))

for ci, (name, c) in enumerate(CASES.items()):
    torch.manual_seed(100 + ci)
    base = AutoModelForCausalLM.from_pretrained(os.path.join(OUT, "models", c["model"], "f32"),
                                                dtype=torch.float32, attn_implementation="eager")
    cfg = LoraConfig(r=c["r"], lora_alpha=c["alpha"], lora_dropout=0.0, target_modules=c["targets"],
                     bias="none", task_type="CAUSAL_LM", use_rslora=False, init_lora_weights=True)
    model = get_peft_model(base, cfg)
    folder = os.path.join(OUT, "lora", name)
    model.save_pretrained(os.path.join(folder, "initial"))
    model.train()

    seqs = sequences(ci, c["lengths"], c.get("mask"))
    rows = rows_for(seqs, c["max_len"], c["padding"], c.get("mask"))
    batches = [rows[i:i + c["bs"]] for i in range(0, len(rows), c["bs"])]
    ga = c["ga"]
    N = c["epochs"] * max(len(batches) // ga, 1)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=c["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                            foreach=False, fused=False)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, (N - s) / max(1, N)))
    steps = []
    for epoch in range(c["epochs"]):
        if len(steps) == N:
            break
        for w0 in range(0, len(batches), ga):
            if len(steps) == N:
                break
            window = [collate(b, c["padding"]) for b in batches[w0:w0 + ga]]
            n_items = sum(int((b["labels"] != -100).sum()) for b in window)
            total = 0.0
            for b in window:
                loss = micro_loss(model, b, n_items)
                loss.backward()
                total += loss.item()
            gn = torch.nn.utils.clip_grad_norm_(params, 1.0)
            steps.append({"loss": total, "lr": opt.param_groups[0]["lr"], "grad_norm": float(gn),
                          "num_items": n_items})
            opt.step()
            sched.step()
            opt.zero_grad()
    model.save_pretrained(os.path.join(folder, "final"))
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(probe["input_ids"]),
                       attention_mask=torch.tensor(probe["attention_mask"])).logits.float().contiguous()
    save_file({"logits": logits}, os.path.join(folder, "logits.safetensors"))
    with open(os.path.join(folder, "golden.json"), "w") as f:
        json.dump({"case": c, "sequences": seqs, "rows": rows, "eos": EOS, "steps": steps,
                   "total_steps": N, "probe_input_ids": probe["input_ids"],
                   "probe_attention_mask": probe["attention_mask"]}, f, indent=1)
    print("wrote", name, [round(s["loss"], 4) for s in steps], flush=True)
