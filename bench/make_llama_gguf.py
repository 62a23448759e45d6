#!/usr/bin/env python3
"""Writes a Llama-shaped GGUF model of about 1.2B parameters for benchmarks, quantized by llama.cpp.

Speed does not depend on what the weights say, so they are random (seeded); the tokenizer and
chat template are the starter model's, so prompts and replies tokenize as for a real model.
Shape: 16 layers, hidden 2048, 32 heads with 8 key-value heads (grouped-query attention, as
Llama 3.1), feed-forward 8192, an untied output head, a 131,072-token context with Llama 3.1's
RoPE frequency factors (`rope_freqs.weight`).

`bench/make_llama_gguf.py Q4_K_M Q8_0` writes models/bench/llama-shaped-1b.<TYPE>.gguf
(git-ignored) from an F16 file it writes first; existing files are kept.
"""
import ctypes
import sys
from pathlib import Path

import gguf
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
STARTER = ROOT / "models/starter/SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = ROOT / "models/bench"
LAYERS, HIDDEN, HEADS, KV_HEADS, FFN, CONTEXT = 16, 2048, 32, 8, 8192, 131072


def rope_factors(head_dim, base=500000.0, factor=8.0, low=1.0, high=4.0, original=8192):
    """Llama 3.1's per-frequency RoPE scaling factors, as its conversion script computes them."""
    freqs = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    low_wavelen, high_wavelen = original / low, original / high
    out = []
    for f in freqs:
        wavelen = 2 * np.pi / f
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (original / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def write_f16(path):
    reader = gguf.GGUFReader(str(STARTER))
    vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("llama-shaped-1b-random")
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    writer.add_rope_freq_base(500000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_vocab_size(vocab)
    for name, field in reader.fields.items():
        if name.startswith("tokenizer."):
            kind = field.types[0]
            sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(name, field.contents(), kind, sub_type=sub)
    rng = np.random.default_rng(1)

    def weight(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)

    writer.add_tensor("token_embd.weight", weight(vocab, HIDDEN))
    writer.add_tensor("output_norm.weight", np.ones(HIDDEN, dtype=np.float32))
    writer.add_tensor("output.weight", weight(vocab, HIDDEN))
    writer.add_tensor("rope_freqs.weight", rope_factors(HIDDEN // HEADS))
    kv = HIDDEN // HEADS * KV_HEADS
    for i in range(LAYERS):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.attn_q.weight", weight(HIDDEN, HIDDEN))
        writer.add_tensor(f"blk.{i}.attn_k.weight", weight(kv, HIDDEN))
        writer.add_tensor(f"blk.{i}.attn_v.weight", weight(kv, HIDDEN))
        writer.add_tensor(f"blk.{i}.attn_output.weight", weight(HIDDEN, HIDDEN))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", weight(FFN, HIDDEN))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", weight(FFN, HIDDEN))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", weight(HIDDEN, FFN))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main():
    import llama_cpp

    OUT.mkdir(parents=True, exist_ok=True)
    f16 = OUT / "llama-shaped-1b.F16.gguf"
    types = {"Q4_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M, "Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0}
    for name in sys.argv[1:] or ["Q4_K_M", "Q8_0"]:
        out = OUT / f"llama-shaped-1b.{name}.gguf"
        if out.exists():
            print(out)
            continue
        if not f16.exists():
            write_f16(f16)
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = types[name]
        params.nthread = 2
        if llama_cpp.llama_model_quantize(str(f16).encode(), str(out).encode(), ctypes.byref(params)) != 0:
            sys.exit(f"quantizing to {name} failed")
        print(out)
    f16.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
