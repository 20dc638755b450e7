#!/usr/bin/python3
"""A client of the TTT server that behaves as SEAL's query_server.py does.

Usage: seal_client.py ENDPOINT TIMEOUT_MS < script.json

The script is a JSON list of steps; the results, one per step, are printed
as a JSON list on stdout:

  {"op": "round_trip", "payload": {...}}
      SEAL's round trip: for each of 2 attempts, a new REQ socket with
      LINGER 0, send the payload, poll up to TIMEOUT_MS; a reply with an
      "error" key is printed and the request retried.
      -> {"reply": {...}, "printed": [...]} or {"raised": "...", "printed": [...]}
  {"op": "abandon", "payload": {...}}
      send the payload and close the socket at once, as a client that
      dies mid-request.  -> {}
  {"op": "shutdown"}
      {"cmd": "shutdown"} on a new REQ socket, wait for the reply.
      -> {"reply": {...}}
"""
import json
import sys

import zmq


def round_trip(ctx, endpoint, payload, timeout_ms, max_retries=2):
    printed = []
    for _ in range(max_retries):
        sock = ctx.socket(zmq.REQ)
        sock.connect(endpoint)
        sock.setsockopt(zmq.LINGER, 0)
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        sock.send_json(payload)
        if poller.poll(timeout_ms):
            reply = sock.recv_json()
            sock.close()
            if "error" not in reply:
                return {"reply": reply, "printed": printed}
            printed.append(f"TTT server error: {reply['error']}")
        else:
            printed.append("No reply in time - retrying")
        poller.unregister(sock)
        sock.close()
    return {"raised": f"TTT server unreachable after {max_retries} attempts", "printed": printed}


def abandon(ctx, endpoint, payload):
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    sock.send_json(payload)
    sock.close()
    return {}


def shutdown(ctx, endpoint, timeout_ms):
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    sock.send_json({"cmd": "shutdown"})
    if not sock.poll(timeout_ms):
        return {"raised": "no reply to shutdown"}
    reply = sock.recv_json()
    sock.close()
    return {"reply": reply}


def main():
    endpoint, timeout_ms = sys.argv[1], int(sys.argv[2])
    steps = json.load(sys.stdin)
    ctx = zmq.Context()
    results = []
    for step in steps:
        op = step["op"]
        if op == "round_trip":
            results.append(round_trip(ctx, endpoint, step["payload"], timeout_ms))
        elif op == "abandon":
            results.append(abandon(ctx, endpoint, step["payload"]))
        elif op == "shutdown":
            results.append(shutdown(ctx, endpoint, timeout_ms))
        else:
            raise ValueError(f"unknown op {op!r}")
    ctx.term()
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
