#!/usr/bin/env python3
"""Writes fuzz/seeds/<target>/: the hostile-file corpus. Each seed is a small input built to
break one rule (a length past the end, an offset near 2^64, a path that leaves the repo, a hash
that is a path, a PDF cut short, a zip that is not a DOCX, markup nested thousands deep), plus a
sound one of each kind so the fuzzer starts from the format's real shape. Seeds named `sound*` must
be read (some are odd but harmless); every other header, file list and resolve answer must be
refused. Deterministic: running it again writes the same bytes. formats/tests/corpus.rs replays
every seed."""
import io
import json
import os
import struct
import zipfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")


def put(target, name, data):
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# --- GGUF -------------------------------------------------------------------------------------
def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gguf(version=3, kvs=(), tensors=(), data=b"", tensor_count=None, kv_count=None, align=32):
    out = b"GGUF" + struct.pack("<I", version)
    out += struct.pack("<Q", len(tensors) if tensor_count is None else tensor_count)
    out += struct.pack("<Q", len(kvs) if kv_count is None else kv_count)
    for key, ty, payload in kvs:
        out += gstr(key) + struct.pack("<I", ty) + payload
    for name, dims, ty, offset in tensors:
        out += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<I", ty) + struct.pack("<Q", offset)
    pad = (-len(out)) % align
    return out + b"\0" * pad + data


arch = ("general.architecture", 8, gstr("llama"))
sound = gguf(kvs=[arch, ("llama.context_length", 4, struct.pack("<I", 4096))],
             tensors=[("token_embd.weight", [4, 2], 0, 0)], data=b"\0" * 32)
put("gguf_header", "sound.gguf", sound)
put("gguf_header", "truncated.gguf", sound[:-8])
put("gguf_header", "string-length-2e60.gguf", b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1 << 60) + b"x")
put("gguf_header", "tensor-count-2e63.gguf", gguf(tensor_count=1 << 63))
put("gguf_header", "nine-dimensions.gguf", gguf(tensors=[("t", [1] * 9, 0, 0)]))
put("gguf_header", "offset-near-2e64.gguf", gguf(tensors=[("t", [4], 0, (1 << 64) - 8)], data=b"\0" * 16))
put("gguf_header", "elements-overflow.gguf", gguf(tensors=[("t", [1 << 40, 1 << 40], 0, 0)]))
put("gguf_header", "unknown-type.gguf", gguf(tensors=[("t", [32], 9999, 0)]))
put("gguf_header", "version-1.gguf", gguf(version=1))
put("gguf_header", "version-4.gguf", gguf(version=4))
put("gguf_header", "array-of-2e62-strings.gguf",
    gguf(kvs=[("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 1 << 62))]))
put("gguf_header", "nested-arrays.gguf",
    gguf(kvs=[("a", 9, struct.pack("<IQ", 9, 1) * 64 + struct.pack("<IQ", 4, 0))]))
put("gguf_header", "sound-alignment-zero.gguf", gguf(kvs=[("general.alignment", 4, struct.pack("<I", 0))]))
put("gguf_header", "not-gguf.bin", b"GGML" + b"\0" * 60)
put("gguf_header", "empty", b"")

# --- safetensors ------------------------------------------------------------------------------
def st(header, data=b"", length=None):
    h = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(h) if length is None else length) + h + data


put("safetensors_header", "sound.safetensors",
    st({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "__metadata__": {"format": "pt"}}, b"\0" * 8))
put("safetensors_header", "header-length-max.safetensors", st({}, length=(1 << 64) - 1))
put("safetensors_header", "header-past-end.safetensors", st({}, length=1000))
put("safetensors_header", "offsets-near-2e64.safetensors",
    st({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, (1 << 64) - 1]}}, b"\0" * 8))
put("safetensors_header", "inverted.safetensors", st({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, b"\0" * 8))
put("safetensors_header", "no-offsets.safetensors", st({"w": {"dtype": "F32", "shape": [2]}}, b"\0" * 8))
put("safetensors_header", "short-data.safetensors", st({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8))
put("safetensors_header", "not-json.safetensors", st(b"{not json", b""))
put("safetensors_header", "deep-json.safetensors", st(b"[" * 5000 + b"]" * 5000))
put("safetensors_header", "seven-bytes", b"\x10\0\0\0\0\0\0")

# --- Hub file lists ---------------------------------------------------------------------------
C, S, B = "c" * 40, "d" * 64, "e" * 40


def listing(siblings, sha=C):
    return json.dumps({"sha": sha, "siblings": siblings})


lfs = {"rfilename": "w.gguf", "lfs": {"sha256": S, "size": 9}}
small = {"rfilename": "config.json", "size": 2, "blobId": B}
put("hub_listing", "sound.json", listing([lfs, small]))
put("hub_listing", "path-traversal.json", listing([dict(lfs, rfilename="../../.bashrc")]))
put("hub_listing", "absolute-path.json", listing([dict(lfs, rfilename="/etc/passwd")]))
put("hub_listing", "backslash-path.json", listing([dict(lfs, rfilename="..\\..\\x")]))
put("hub_listing", "hash-is-a-path.json", listing([{"rfilename": "w.gguf", "lfs": {"sha256": "/home/u/.bashrc", "size": 9}}]))
put("hub_listing", "blob-id-is-a-path.json", listing([dict(small, blobId="../../../../tmp/x")]))
put("hub_listing", "commit-is-a-path.json", listing([lfs], sha="../refs/main"))
put("hub_listing", "no-digest.json", listing([{"rfilename": "w.gguf"}]))
put("hub_listing", "size-overflow.json", '{"sha":"%s","siblings":[{"rfilename":"w","size":184467440737095516160,"blobId":"%s"}]}' % (C, B))
put("hub_listing", "deep-nesting.json", '{"sha":"%s","siblings":%s}' % (C, "[" * 10000 + "]" * 10000))
put("hub_listing", "not-an-object.json", "[1,2,3]")
put("hub_listing", "unicode-name.json", listing([dict(lfs, rfilename="mod\u00e8le/\u0000\u202e.gguf")]))

# --- Hub resolve headers (first line: the file asked for; then `name: value` lines) ------------
put("hub_headers", "sound.txt", f"w.gguf\nx-repo-commit: {C}\nx-linked-etag: \"{S}\"\nx-linked-size: 9\n")
put("hub_headers", "sound-weak-etag.txt", f"config.json\nx-repo-commit: {C}\netag: W/\"{B}\"\ncontent-length: 2\n")
put("hub_headers", "etag-is-a-path.txt", f"w.gguf\nx-repo-commit: {C}\nx-linked-etag: \"/home/u/.bashrc\"\nx-linked-size: 9\n")
put("hub_headers", "commit-is-a-path.txt", f"w.gguf\nx-repo-commit: ../../x\nx-linked-etag: \"{S}\"\nx-linked-size: 9\n")
put("hub_headers", "file-is-a-path.txt", f"../etc/passwd\nx-repo-commit: {C}\nx-linked-etag: \"{S}\"\nx-linked-size: 9\n")
put("hub_headers", "size-not-a-number.txt", f"w.gguf\nx-repo-commit: {C}\nx-linked-etag: \"{S}\"\nx-linked-size: -1\n")
put("hub_headers", "nothing.txt", "w.gguf\n")

# --- Documents (first byte: 0 pdf, 1 docx, 2 html, 3 txt, 4 no extension, 5 md) ---------------
def pdf(pages):
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", None, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in pages:
        stream = "BT /F1 14 Tf 72 720 Td (%s) Tj ET" % text
        objects.append("<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        contents = len(objects)
        objects.append("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % contents)
        kids.append("%d 0 R" % len(objects))
    objects[1] = "<< /Type /Pages /Kids [%s] /Count %d >>" % (" ".join(kids), len(pages))
    out = "%PDF-1.4\n"
    offsets = []
    for i, body in enumerate(objects):
        offsets.append(len(out))
        out += "%d 0 obj\n%s\nendobj\n" % (i + 1, body)
    xref = len(out)
    out += "xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for o in offsets:
        out += "%010d 00000 n \n" % o
    out += "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out.encode()


good_pdf = pdf(["The cooperative grew quinoa near Oruro.", "Llamas carried the harvest."])
put("document", "sound.pdf", b"\0" + good_pdf)
put("document", "truncated.pdf", b"\0" + good_pdf[: len(good_pdf) // 2])
put("document", "broken-xref.pdf", b"\0" + good_pdf.replace(b"xref", b"xrex"))
put("document", "pages-loop.pdf", b"\0" + good_pdf.replace(b"/Parent 2 0 R", b"/Parent 4 0 R /Kids [4 0 R]"))
put("document", "count-2e31.pdf", b"\0" + good_pdf.replace(b"/Count 2", b"/Count 2147483647"))
put("document", "encrypted.pdf", b"\0" + good_pdf.replace(b"/Root 1 0 R", b"/Root 1 0 R /Encrypt << /Filter /Standard /V 2 /R 3 /O (x) /U (y) /P -4 >>"))
put("document", "signature-only.pdf", b"\0%PDF-")
put("document", "length-past-end.pdf", b"\0" + good_pdf.replace(b"/Length ", b"/Length 99999"))


def docx(body_xml):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in [
            ("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'),
            ("_rels/.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>'),
            ("word/document.xml", '<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>%s</w:body></w:document>' % body_xml),
        ]:
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            z.writestr(info, text)
    return buf.getvalue()


put("document", "sound.docx", b"\1" + docx("<w:p><w:r><w:t>Water was scarce in August.</w:t></w:r></w:p>"))
put("document", "deep.docx", b"\1" + docx("<w:p>" * 3000 + "</w:p>" * 3000))
put("document", "entity-expansion.docx", b"\1" + docx('<w:p><w:r><w:t>&lol9;</w:t></w:r></w:p>').replace(b'<?xml version="1.0"?><w:document', b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY lol "lol"><!ENTITY lol9 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><w:document'))
put("document", "not-a-zip.docx", b"\1PK\x03\x04 not really")
put("document", "zip-without-document.docx", b"\1" + docx("").replace(b"word/document.xml", b"word/missing__.xml"))
put("document", "sound.html", b"\2<html><body><h1>Field notes</h1><p>The llamas grazed in June.</p><script>alert(1)</script></body></html>")
put("document", "deep.html", b"\2" + b"<div>" * 20000 + b"x" + b"</div>" * 20000)
put("document", "table-bomb.html", b"\2<table>" + b"<tr>" + b"<td colspan=1000>x</td>" * 200 + b"</tr></table>")
put("document", "utf16.txt", b"\3\xff\xfe" + "Grüße aus Oruro".encode("utf-16-le"))
put("document", "invalid-utf8.txt", b"\3caf\xe9 \xff\xfe\xfd")
put("document", "nul-bytes", b"\4\0\0\0\0binary")
put("document", "sound.md", b"\5# Notes\n\n- quinoa\n- llamas\n")
# --- an OpenAI-compatible server's answers (first byte: the size of the pieces they arrive in) --
def chunk(content=None, finish=None, usage=None):
    body = {"id": "c", "object": "chat.completion.chunk", "choices": []}
    if content is not None or finish is not None:
        body["choices"] = [{"index": 0, "delta": {} if content is None else {"content": content}, "finish_reason": finish}]
    if usage is not None:
        body["usage"] = usage
    return ("data: " + json.dumps(body) + "\n\n").encode()


sound_stream = chunk("Hel") + chunk("lo") + chunk(finish="stop") + chunk(usage={"prompt_tokens": 5, "completion_tokens": 2}) + b"data: [DONE]\n\n"
put("openai_stream", "sound-stream", b"\x07" + sound_stream)
put("openai_stream", "sound-crlf-stream", b"\x01" + sound_stream.replace(b"\n\n", b"\r\n\r\n"))
put("openai_stream", "sound-models.json", b"\x40" + json.dumps({"object": "list", "data": [{"id": "llama", "max_model_len": 131072}, {"id": "b", "meta": {"n_ctx_train": 4096}}]}).encode())
put("openai_stream", "error-in-stream", b"\x05" + chunk("Hi") + b'data: {"error": {"message": "CUDA out of memory"}}\n\n')
put("openai_stream", "not-json", b"\x03data: {\"choices\": [\n\n")
put("openai_stream", "endless-event", b"\xff" + b"data: " + b"x" * 70000)
put("openai_stream", "models-not-a-list.json", b"\x10" + b'{"data": {"id": 1}}')
put("openai_stream", "huge-ids.json", b"\x10" + json.dumps({"data": [{"id": "m" * 4000, "context_length": -5}, {"id": 7}]}).encode())
put("openai_stream", "deep-nesting.json", b"\x10" + b'{"data": ' + b"[" * 5000 + b"]" * 5000 + b"}")
put("openai_stream", "invalid-utf8", b"\x02data: {\"choices\": [{\"delta\": {\"content\": \"\xff\xfe\"}}]}\n\n")
print("seeds written to", ROOT)
