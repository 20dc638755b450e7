#!/usr/bin/python3
"""Time SEAL's outer loop against a TTT server (or a broker).

Usage: outer_loop.py DATA.json ENDPOINT [N_ARTICLES [K [EVAL_TIMES]]]

Sends the requests SEAL's query_server.py sends, in its order: for each of
the first N_ARTICLES articles (default 3), for each of its first K
non-empty completions (default 3), EVAL_TIMES requests (default 2) with the
same sequences and questions; a new REQ socket per attempt with LINGER 0, a
10-minute poll, 2 attempts, an error reply retried. The payload has
query_server.py's keys and defaults (no seed, no split_newlines). Prints one
line per request and then the total wall time as JSON on stdout.

DATA.json is a SEAL data file such as base_val.json. For measurements only:
the tests do not use it.
"""
import json
import sys
import time

import zmq

TIMEOUT_MS = 600_000
ATTEMPTS = 2


def sequences(completion, context, title):
    """SEAL's training sequences without split_newlines: the completion's
    '---'-separated pieces, then the passage, each after a title line."""
    pieces = [p.strip() for p in completion.split("---") if p.strip()] or [completion.strip()]
    return [f"{title}\n{p}" for p in pieces] + [f"{title}\n{context.strip()}"]


def request(ctx, endpoint, payload):
    for _ in range(ATTEMPTS):
        sock = ctx.socket(zmq.REQ)
        sock.connect(endpoint)
        sock.setsockopt(zmq.LINGER, 0)
        sock.send_json(payload)
        if sock.poll(TIMEOUT_MS):
            reply = sock.recv_json()
            sock.close()
            if "error" not in reply:
                return reply
            print(f"server error: {reply['error']}", file=sys.stderr)
        else:
            sock.close()
            print("no reply in time: retrying", file=sys.stderr)
    raise RuntimeError(f"no reply after {ATTEMPTS} attempts")


def main():
    if not 3 <= len(sys.argv) <= 6:
        sys.exit(__doc__)
    data = json.load(open(sys.argv[1], encoding="utf-8"))
    endpoint = sys.argv[2]
    n_articles, k, eval_times = (int(a) for a in (sys.argv[3:] + ["3", "3", "2"][len(sys.argv) - 3:]))
    ctx = zmq.Context()
    start = time.monotonic()
    n = 0
    for a, item in enumerate(data[:n_articles]):
        title, context = item["title"], item["context"]
        questions = [{"title": title, "context": context,
                      "question": f"Topic: {title}\n{q['question']}", "answer": q["answer"]}
                     for q in item["questions"]]
        completions = [c for c in item["completions"] if c.strip()][:k]
        for c, completion in enumerate(completions):
            payload = {
                "train_sequences": sequences(completion, context, title),
                "eval_questions": questions,
                "lora_rank": 32, "lora_alpha": 64, "lora_dropout": 0,
                "finetune_epochs": 10, "finetune_lr": 1e-3,
                "batch_size": 1, "gradient_accumulation_steps": 1,
                "end_mask_substring": "",
            }
            for r in range(eval_times):
                t0 = time.monotonic()
                reply = request(ctx, endpoint, payload)
                n += 1
                print(f"article {a} completion {c} repeat {r}: {time.monotonic() - t0:.2f} s, "
                      f"baseline {reply['baseline_accuracy']}, adapter {reply['adapter_accuracy']}", file=sys.stderr)
    ctx.term()
    json.dump({"requests": n, "wall_s": round(time.monotonic() - start, 2)}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
