#!/usr/bin/env bash
# Makes the expected signatures of src/sign.rs's unit test with OpenSSL, from
# test-key.pem (a throwaway key made for the test) and the request the test
# signs. Run from this directory; it rewrites expected-1.0.b64 and -1.3.b64.
set -euo pipefail
body='{"name":"n1"}'
time=2026-12-02T16:00:00Z
path=/organizations/acme/nodes
b64() { openssl base64 -A; }
# 1.0: the canonical text itself, PKCS#1 v1.5 padded, no DigestInfo.
printf 'Method:POST\nHashed Path:%s\nX-Ops-Content-Hash:%s\nX-Ops-Timestamp:%s\nX-Ops-UserId:occopus' \
    "$(printf %s "$path" | openssl dgst -sha1 -binary | b64)" \
    "$(printf %s "$body" | openssl dgst -sha1 -binary | b64)" "$time" |
    openssl rsautl -sign -inkey test-key.pem | b64 > expected-1.0.b64
# 1.3: PKCS#1 v1.5 over SHA-256 of the canonical text.
printf 'Method:POST\nPath:%s\nX-Ops-Content-Hash:%s\nX-Ops-Sign:version=1.3\nX-Ops-Timestamp:%s\nX-Ops-UserId:occopus\nX-Ops-Server-API-Version:0' \
    "$path" "$(printf %s "$body" | openssl dgst -sha256 -binary | b64)" "$time" |
    openssl dgst -sha256 -sign test-key.pem | b64 > expected-1.3.b64
echo >> expected-1.0.b64
echo >> expected-1.3.b64
