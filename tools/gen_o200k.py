#!/usr/bin/env python3
"""Builds crates/bursar-providers/data/o200k_base.bin, the vocabulary Bursar counts prompt
tokens with, from OpenAI's public `o200k_base.tiktoken` rank file (one `base64(token) rank`
line per token; the copy in the tiktoken-rs crate on crates.io is the one used:
~/.cargo/registry/src/*/tiktoken-rs-*/assets/o200k_base.tiktoken).

Output format: for every rank from 0 upwards, one byte with the token's length, then the
token's bytes. Ranks must be dense (0..n) and tokens at most 255 bytes long.

usage: tools/gen_o200k.py <o200k_base.tiktoken> [output]
"""
import base64
import hashlib
import sys


def main() -> None:
    src = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else "crates/bursar-providers/data/o200k_base.bin"
    tokens = {}
    with open(src, "rb") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            raw, rank = line.split()
            tokens[int(rank)] = base64.b64decode(raw)
    ranks = sorted(tokens)
    if ranks != list(range(len(ranks))):
        sys.exit("ranks are not dense")
    blob = bytearray()
    for rank in ranks:
        token = tokens[rank]
        if not 0 < len(token) < 256:
            sys.exit(f"token {rank} has length {len(token)}")
        blob.append(len(token))
        blob += token
    with open(out, "wb") as f:
        f.write(blob)
    print(f"{out}: {len(ranks)} tokens, {len(blob)} bytes, sha256 {hashlib.sha256(blob).hexdigest()}")


if __name__ == "__main__":
    main()
