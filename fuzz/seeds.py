#!/usr/bin/env python3
"""Builds the seed corpora of the fuzz targets (fuzz/corpus/<target>/) from
what the repository already holds: the frames quoted by the unit and
end-to-end tests and by docs/protocol.md, the KMIP request and response
bodies of tests/fixtures/kmip and docs/examples, and the TOML of
packaging/, docs/ and the configuration tests. Seeds are named by the hash
of their content, so running it again adds nothing twice. Standard library
only. Usage: fuzz/seeds.py [REPO_ROOT [CORPUS_DIR]]
"""

import hashlib
import pathlib
import re
import struct
import sys

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent.parent)
CORPUS = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "fuzz" / "corpus"

RAW = re.compile(r'b?r#"(.*?)"#', re.S)
PLAIN = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)


def rust_files(*globs):
    for g in globs:
        yield from sorted(ROOT.glob(g))


def raw_strings(paths):
    for p in paths:
        for m in RAW.finditer(p.read_text()):
            yield m.group(1)


def unescape(s):
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            n = s[i + 1]
            out.append({"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(n, n))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def plain_strings(paths):
    for p in paths:
        for m in PLAIN.finditer(p.read_text()):
            yield unescape(m.group(1))


def fenced(paths, lang):
    for p in paths:
        for m in FENCE.finditer(p.read_text()):
            if m.group(1) == lang:
                yield m.group(2)


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def frame(body):
    return struct.pack(">I", len(body)) + body


def main():
    counts = {}
    # hsmd's frames: requests and hellos as the tests and docs/protocol.md write them.
    frames = set(
        raw_strings(
            rust_files(
                "protocol/tests/*.rs",
                "protocol/src/*.rs",
                "hsmd/src/server/*.rs",
                "tests/tests/*.rs",
            )
        )
    )
    docs_json = list(fenced([ROOT / "docs/protocol.md"], "json"))
    for block in docs_json:
        frames.update(line for line in block.splitlines() if line.startswith("{"))
        frames.add(block)
    frames = sorted(f for f in frames if f.lstrip().startswith(("{", "[")) or f == "")
    hellos = [f for f in frames if '"hello"' in f]
    requests = [f for f in frames if '"hello"' not in f and '"op"' in f]
    answers = [f for f in frames if '"result"' in f or '"error"' in f or '"hello"' in f]
    for f in frames:
        put("hsmd_request", f)
    for h in hellos:
        put("hsmd_hello", h)
    hello = (hellos or ['{"hello":{"versions":[1],"client":"seed/0"}}'])[0].encode()
    for r in requests:
        # max_frame_len 65,536, chunks of 16 bytes, the hello then the request.
        put("hsmd_frame", b"\xff\xff\x0f" + frame(hello) + frame(r.encode()))
    put("hsmd_frame", b"\xff\xff\xff" + frame(hello) + b"".join(frame(r.encode()) for r in requests))
    for a in answers:
        for pick in range(12):
            put("client_answer", bytes([pick]) + a.encode())
    # KMIP bodies: the reference client's requests and the reference server's answers.
    kmip = sorted(ROOT.glob("tests/fixtures/kmip/*_request.json"))
    kmip += sorted(ROOT.glob("tests/fixtures/kmip/*_response.json"))
    kmip += sorted(ROOT.glob("docs/examples/*.json"))
    for p in kmip:
        body = p.read_bytes()
        put("kmip_ttlv", body)
        if p.name.endswith("_request.json") or p.parent.name == "examples":
            put("kmip_operations", b"\x00" + body)
            put("kmip_operations", b"\x01" + body)
    # Configurations: the packaged files, the docs' examples, the tests' texts.
    hsmd_toml = [ROOT / "packaging/hsmd.toml"]
    hsmd_toml_text = [p.read_text() for p in hsmd_toml if p.exists()]
    hsmd_toml_text += fenced([ROOT / "docs/configuration.md", ROOT / "README.md"], "toml")
    hsmd_tests = [ROOT / "hsmd/src/config/tests.rs"]
    hsmd_toml_text += list(raw_strings(hsmd_tests))
    hsmd_toml_text += [s for s in plain_strings(hsmd_tests) if "=" in s]
    for t in hsmd_toml_text:
        put("hsmd_config", t)
    kms_toml = [ROOT / "packaging/kms.toml"]
    kms_toml_text = [p.read_text() for p in kms_toml if p.exists()]
    kms_toml_text += fenced([ROOT / "docs/kms-frontend.md"], "toml")
    kms_tests = [ROOT / "kms-frontend/src/config/tests.rs"]
    kms_toml_text += list(raw_strings(kms_tests))
    kms_toml_text += [s for s in plain_strings(kms_tests) if "=" in s]
    for t in kms_toml_text:
        put("frontend_config", t)
    for d in sorted(CORPUS.iterdir()):
        counts[d.name] = len(list(d.iterdir()))
    print("fuzz seeds: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
