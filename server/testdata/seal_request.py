#!/usr/bin/python3
"""Build one TTT request from SEAL's synthetic data, as SEAL's query client does.

Usage: seal_request.py DATA.json [ARTICLE [COMPLETION]] > request.json

DATA.json is a SEAL data file (a list of {"title", "context", "questions",
"completions"}). The request fine-tunes on one completion of one article
(default: the first of each) and asks all the article's questions, with the
query client's default hyperparameters. Run it with `seal-ttt ttt --request`.
Not used by the tests; for manual end-to-end runs and benchmarks.
"""
import json
import re
import sys

MAX_SEQUENCES_PER_COMPLETION = 30


def train_sequences(completion, context, title):
    """The sequences SEAL's client trains on (no --split_newlines): the
    completion's '---'-separated pieces and then the passage, each after a
    title line."""
    marker = re.search(r"\nImplications:\s*", completion)
    if marker:
        completion = completion[marker.end():].lstrip()
    pieces = [p.strip() for p in completion.split("---") if p.strip()]
    if not pieces:
        pieces = [completion.strip()]
    pieces = [p for p in pieces[:MAX_SEQUENCES_PER_COMPLETION] if p.strip()]
    return [f"{title}\n{p}" for p in pieces] + [f"{title}\n{context.strip()}"]


def main():
    if not 2 <= len(sys.argv) <= 4:
        sys.exit(__doc__)
    data = json.load(open(sys.argv[1], encoding="utf-8"))
    article = data[int(sys.argv[2]) if len(sys.argv) > 2 else 0]
    completion = article["completions"][int(sys.argv[3]) if len(sys.argv) > 3 else 0]
    title, context = article["title"], article["context"]
    request = {
        "train_sequences": train_sequences(completion, context, title),
        "eval_questions": [
            {"title": title, "context": context,
             "question": f"Topic: {title}\n{q['question']}", "answer": q["answer"]}
            for q in article["questions"]
        ],
        "lora_rank": 32,
        "lora_alpha": 64,
        "lora_dropout": 0,
        "finetune_epochs": 10,
        "finetune_lr": 1e-3,
        "batch_size": 1,
        "gradient_accumulation_steps": 1,
        "end_mask_substring": "",
    }
    json.dump(request, sys.stdout, indent=1, ensure_ascii=False)
    print()


if __name__ == "__main__":
    main()
