#!/usr/bin/env python3
"""Verify a Gridsync provenance export without Gridsync.

Usage: verify.py EXPORT.json

An export (`gridsync-server export-provenance`, or the dashboard's
"导出" link on a record's 修改记录与签名 page) holds a record's changes, the
devices' Ed25519 signatures with the manifests they cover, and the devices'
public keys. This program checks every signed change from the bytes alone,
as docs/provenance.md describes:

1. Parse the change chunk: magic 85 6f 4a 83, a 4-byte checksum, a chunk type
   byte (1 = change, 2 = deflate-compressed change), a ULEB128 length, the data.
2. Its hash is SHA-256 over (01, ULEB128(len(data)), data), the data inflated
   first (raw deflate) for type 2; the checksum is the hash's first 4 bytes.
3. The signature it came under covers a manifest: for each record, its id
   (16 bytes), a change count (4 bytes, big-endian) and the change hashes
   (32 bytes each). The manifest must name this record and this hash.
4. The signed message is b"gridsync-batch-v1" || device id (16 bytes) ||
   manifest; the signature must verify under the device's public key
   (RFC 8032 Ed25519), and the signing device must be the change's.

It prints one line per change and exits 0 only if every signed change
verifies (unsigned changes, made on the web dashboard, are listed as such).
It needs only Python 3 and the `cryptography` package.
"""

import hashlib
import json
import sys
import uuid
import zlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

MAGIC = bytes([0x85, 0x6F, 0x4A, 0x83])
DOMAIN = b"gridsync-batch-v1"


def uleb128(data, pos):
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("bad length")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def encode_uleb128(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def change_hash(chunk):
    """The Automerge hash of a change chunk, checking its checksum."""
    if chunk[:4] != MAGIC:
        raise ValueError("not an Automerge chunk")
    checksum, kind = chunk[4:8], chunk[8]
    length, pos = uleb128(chunk, 9)
    data = chunk[pos:pos + length]
    if len(data) != length or pos + length != len(chunk):
        raise ValueError("chunk length does not match")
    if kind == 2:
        data = zlib.decompress(data, -15)
    elif kind != 1:
        raise ValueError(f"chunk type {kind} is not a change")
    digest = hashlib.sha256(b"\x01" + encode_uleb128(len(data)) + data).digest()
    if digest[:4] != checksum:
        raise ValueError("checksum does not match the bytes")
    return digest


def manifest_names(manifest, record, digest):
    """Whether the manifest names change `digest` of record `record`."""
    pos = 0
    while pos < len(manifest):
        if pos + 20 > len(manifest):
            raise ValueError("manifest cut short")
        doc, count = manifest[pos:pos + 16], int.from_bytes(manifest[pos + 16:pos + 20], "big")
        pos += 20
        hashes = manifest[pos:pos + 32 * count]
        if len(hashes) != 32 * count:
            raise ValueError("manifest cut short")
        pos += 32 * count
        if doc == record and any(hashes[i:i + 32] == digest for i in range(0, len(hashes), 32)):
            return True
    return False


def main(path):
    with open(path, encoding="utf-8") as f:
        export = json.load(f)
    if export.get("format") != "gridsync-provenance-v1":
        print(f"{path}: not a gridsync-provenance-v1 export")
        return 2
    record = uuid.UUID(export["record_id"])
    keys = {
        d["device_id"]: bytes.fromhex(d["public_key"])
        for d in export["devices"]
        if d.get("public_key")
    }
    batches = {b["signature"]: b for b in export["signatures"]}
    bad, good, unsigned = 0, 0, 0
    for c in export["changes"]:
        label = f"change {c['seq']} ({c['hash'][:16]}) by {c['device_id']}"
        if not c.get("signature"):
            unsigned += 1
            print(f"UNSIGNED {label}")
            continue
        try:
            digest = change_hash(bytes.fromhex(c["change"]))
            if digest.hex() != c["hash"]:
                raise ValueError("the listed hash is not the change's")
            key = keys.get(c["device_id"])
            if key is None:
                raise ValueError("no public key for its device")
            batch = batches.get(c["signature"])
            if batch is None or batch["device_id"] != c["device_id"]:
                raise ValueError("its signature is not listed for its device")
            manifest = bytes.fromhex(batch["manifest"])
            if not manifest_names(manifest, record.bytes, digest):
                raise ValueError("the signature does not cover this change")
            message = DOMAIN + uuid.UUID(c["device_id"]).bytes + manifest
            Ed25519PublicKey.from_public_bytes(key).verify(bytes.fromhex(c["signature"]), message)
        except (ValueError, InvalidSignature, zlib.error) as e:
            bad += 1
            print(f"INVALID  {label}: {str(e) or 'signature does not verify'}")
            continue
        good += 1
        print(f"VALID    {label}")
    print(f"{good} valid, {bad} invalid, {unsigned} unsigned")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
