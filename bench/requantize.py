#!/usr/bin/env python3
"""Requantizes the starter model with llama.cpp (bench/.venv) so the engine can be compared on
the quantizations real Llama 3.1 downloads use: `bench/requantize.py Q8_0 Q4_K_M`.
Writes models/starter/SmolLM2-135M-Instruct.<TYPE>.gguf (git-ignored)."""
import ctypes
import sys
from pathlib import Path

import llama_cpp

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "models/starter/SmolLM2-135M-Instruct.Q4_1.gguf"
TYPES = {"Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "Q4_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
         "Q5_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_M, "Q6_K": llama_cpp.LLAMA_FTYPE_MOSTLY_Q6_K}

for name in sys.argv[1:]:
    out = SOURCE.with_name(f"SmolLM2-135M-Instruct.{name}.gguf")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = TYPES[name]
    params.allow_requantize = True
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(str(SOURCE).encode(), str(out).encode(), ctypes.byref(params))
    if rc != 0:
        sys.exit(f"quantizing to {name} failed ({rc})")
    print(out)
