#!/usr/bin/env python3
"""Peak resident memory of one `bursar serve` process per hostile request.

Each case starts a fresh gateway (release build unless BURSAR_BIN says otherwise) on a
scratch data directory, reads its peak RSS (VmHWM) once it is idle, sends the case's
request(s), and reads the peak again. Prints one row per case: the status codes, the peak
before, after, and the growth. Linux only (reads /proc).

    tools/bench/request_rss.py            # all cases
    BURSAR_BIN=target/release/bursar tools/bench/request_rss.py keygen chat

Cases:
  keygen     one 31 MB /key/generate whose `models` holds ~2 million names
  keygen3    three of those at once
  chat       one 29 MB chat request of ~850,000 tiny messages
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

MASTER = "sk-rss-measurement-master-key"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("BURSAR_BIN", os.path.join(ROOT, "target", "release", "bursar"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def keygen_body():
    models = [f"model-{i:07d}" for i in range(1_950_000)]
    return json.dumps({"key_alias": "rss", "models": models}).encode()


def chat_body():
    messages = [{"role": "user", "content": "x"}] * 850_000
    return json.dumps({"model": "demo", "messages": messages}).encode()


def post(port, path, body, out):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        response.read()
        out.append(response.status)
    except Exception as e:  # a reset connection is an answer too
        out.append(type(e).__name__)
    finally:
        conn.close()


def run(case):
    path, body, copies = {
        "keygen": ("/key/generate", keygen_body, 1),
        "keygen3": ("/key/generate", keygen_body, 3),
        "chat": ("/v1/chat/completions", chat_body, 1),
    }[case]
    payload = body()
    with tempfile.TemporaryDirectory() as data:
        config = os.path.join(data, "config.yaml")
        with open(config, "w") as f:
            f.write(
                "model_list:\n  - {model_name: demo, litellm_params: {model: bursar/demo}}\n"
                f"general_settings:\n  master_key: {MASTER}\n"
            )
        port = free_port()
        server = subprocess.Popen(
            [BIN, "serve", "--config", config, "--port", str(port), "--data-dir", data],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "error"},
        )
        try:
            deadline = time.time() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.1)
            time.sleep(1)
            before = peak_kib(server.pid)
            statuses = []
            threads = [
                threading.Thread(target=post, args=(port, path, payload, statuses))
                for _ in range(copies)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            time.sleep(0.5)
            after = peak_kib(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    mb = len(payload) / 1e6
    print(
        f"| {case} | {copies} × {mb:.1f} MB | {statuses} | {before / 1024:.0f} MiB | "
        f"{after / 1024:.0f} MiB | {(after - before) / 1024:.0f} MiB |"
    )


def main():
    cases = sys.argv[1:] or ["keygen", "keygen3", "chat"]
    print("| case | request | statuses | peak RSS before | peak RSS after | growth |")
    print("|---|---|---|---|---|---|")
    for case in cases:
        run(case)


if __name__ == "__main__":
    main()
