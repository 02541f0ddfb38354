#!/usr/bin/env python3
"""Test scaffolding: calls a Chef server's API as a client, for the chef
config manager's end-to-end tests, which read back what occopus registered
and play a node's chef-client report (Debian has no chef-client).

Requests are signed with X-Ops-Sign 1.0 written here from Chef's protocol
description (not occopus's code): the canonical text is PKCS#1 v1.5 padded
(block type 1, no DigestInfo) and raised to the key's private exponent.

    chef_api.py ENDPOINT CLIENT KEY_FILE METHOD PATH [BODY_JSON]

prints {"status": N, "body": <JSON or text>}.
"""
import base64
import datetime
import hashlib
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

from cryptography.hazmat.primitives import serialization


def b64(data):
    return base64.b64encode(data).decode()


def sign(key, text):
    numbers = key.private_numbers()
    n, d = numbers.public_numbers.n, numbers.d
    size = (n.bit_length() + 7) // 8
    padded = b"\x00\x01" + b"\xff" * (size - 3 - len(text)) + b"\x00" + text
    return pow(int.from_bytes(padded, "big"), d, n).to_bytes(size, "big")


def call(endpoint, client, key_file, method, path, body=""):
    with open(key_file, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    url = endpoint.rstrip("/") + path
    signed_path = urllib.parse.urlsplit(url).path
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    content_hash = b64(hashlib.sha1(body.encode()).digest())
    canonical = (
        f"Method:{method}\nHashed Path:{b64(hashlib.sha1(signed_path.encode()).digest())}\n"
        f"X-Ops-Content-Hash:{content_hash}\nX-Ops-Timestamp:{stamp}\nX-Ops-UserId:{client}"
    )
    signature = b64(sign(key, canonical.encode()))
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "X-Chef-Version": "12.0.0",
        "X-Ops-Sign": "algorithm=sha1;version=1.0;",
        "X-Ops-Userid": client,
        "X-Ops-Timestamp": stamp,
        "X-Ops-Content-Hash": content_hash,
    }
    for i in range(0, len(signature), 60):
        headers[f"X-Ops-Authorization-{i // 60 + 1}"] = signature[i : i + 60]
    request = urllib.request.Request(
        url, data=body.encode() if body else None, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            status, text = answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        status, text = refused.code, refused.read().decode()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = text
    return {"status": status, "body": parsed}


if __name__ == "__main__":
    print(json.dumps(call(*sys.argv[1:])))
