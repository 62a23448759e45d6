#!/usr/bin/env python3
"""Starter model: decode tokens/s and time to first token, `altiplano chat` against llama.cpp.

Same GGUF file, same prompts, same greedy sampling, same reply length, same thread count, same
run. Each measurement is a fresh process (altiplano) or a fresh model instance (llama.cpp), so
neither side benefits from a warm cache. llama.cpp comes from the PyPI package
llama-cpp-python, built from source into bench/.venv by bench/run.sh.

Writes the results between the markers of BENCHMARKS.md.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = [
    "Write a short story about a llama who climbs a mountain.",
    "Explain how a bicycle works, step by step.",
    "List five facts about the ocean.",
]


def altiplano_run(binary, model, prompt, max_tokens, threads, data_dir, repack=True):
    env = dict(os.environ, ALTIPLANO_DATA_DIR=data_dir, RAYON_NUM_THREADS=str(threads),
               ALTIPLANO_REPACK="1" if repack else "0")
    out = subprocess.run(
        [binary, "chat", "--model", model, "--greedy", "--json", "--max-tokens", str(max_tokens), prompt],
        env=env, check=True, capture_output=True, text=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "ttft_s": result["time_to_first_token_ms"] / 1000.0,
        "decode_tps": result["decode_tokens_per_second"],
        "tokens": result["completion_tokens"],
        "prompt_tokens": result["prompt_tokens"],
        "text": result["reply"],
    }


def llamacpp_run(model, prompt, max_tokens, threads):
    from llama_cpp import Llama

    llm = Llama(model_path=model, n_threads=threads, n_threads_batch=threads, n_ctx=4096, verbose=False)
    start = time.perf_counter()
    first = last = None
    pieces = []
    for chunk in llm.create_chat_completion(
        messages=[{"role": "user", "content": prompt}],
        max_tokens=max_tokens, temperature=0.0, top_k=1, stream=True,
    ):
        delta = chunk["choices"][0]["delta"].get("content")
        if delta:
            now = time.perf_counter()
            first = first or now
            last = now
            pieces.append(delta)
    tokens = len(llm.tokenize("".join(pieces).encode(), add_bos=False, special=False))
    decode = (tokens - 1) / (last - first) if last and first and last > first and tokens > 1 else None
    return {"ttft_s": first - start, "decode_tps": decode, "tokens": tokens, "text": "".join(pieces)}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--altiplano", required=True)
    ap.add_argument("--model", default=str(ROOT / "models/starter/SmolLM2-135M-Instruct.Q4_1.gguf"), type=lambda p: str(Path(p).resolve()))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--write", default=str(ROOT / "BENCHMARKS.md"))
    ap.add_argument("--stop-latency", help="JSON written by the stop_latency example")
    args = ap.parse_args()

    import tempfile

    rows = {"altiplano": [], "llama.cpp": [], "as stored": []}
    with tempfile.TemporaryDirectory() as data_dir:
        # The first load writes the Q8_0 copy of a Q4_1/Q5 file (the CPU has no fast kernel for
        # those); it is timed like the others, since the copy is written before the reply.
        for _ in range(args.repeat):
            for prompt in PROMPTS:
                a = altiplano_run(args.altiplano, args.model, prompt, args.max_tokens, args.threads, data_dir)
                rows["altiplano"].append(a)
                # The same file loaded as it is (ALTIPLANO_REPACK=0), for what the copy gains.
                rows["as stored"].append(
                    altiplano_run(args.altiplano, args.model, prompt, args.max_tokens, args.threads, data_dir, repack=False))
                b = llamacpp_run(args.model, prompt, args.max_tokens, args.threads)
                rows["llama.cpp"].append(b)
                same = "same" if a["text"].strip() == b["text"].strip() else "different"
                print(f"{prompt[:40]!r}: altiplano {a['decode_tps']:.1f} tok/s, ttft {a['ttft_s']:.3f} s "
                      f"(as stored {rows['as stored'][-1]['decode_tps']:.1f} tok/s) | "
                      f"llama.cpp {b['decode_tps']:.1f} tok/s, ttft {b['ttft_s']:.3f} s | greedy text {same}",
                      flush=True)
        # On the CPU, altiplano runs Q4_1/Q5 weights from a Q8_0 copy in the data folder.
        repacked = any((Path(data_dir) / "cache" / "repacked").glob("*.gguf"))

    med = {k: {m: median([r[m] for r in v]) for m in ("decode_tps", "ttft_s")} for k, v in rows.items()}
    stored_decode_ratio = med["as stored"]["decode_tps"] / med["llama.cpp"]["decode_tps"]
    stored_ttft_ratio = med["llama.cpp"]["ttft_s"] / med["as stored"]["ttft_s"]
    decode_ratio = med["altiplano"]["decode_tps"] / med["llama.cpp"]["decode_tps"]
    ttft_ratio = med["llama.cpp"]["ttft_s"] / med["altiplano"]["ttft_s"]
    same_text = sum(a["text"].strip() == b["text"].strip() for a, b in zip(rows["altiplano"], rows["llama.cpp"]))

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    stop_section = ""
    if args.stop_latency and args.model.endswith("starter/SmolLM2-135M-Instruct.Q4_1.gguf"):
        stop = json.loads(Path(args.stop_latency).read_text())
        stop_section = f"""
### Stop

`cargo run -p altiplano-core --example stop_latency` (10 long greedy replies, each stopped after 8 tokens):
cancel → the reply's `Finished` event (what the UI and the store act on): median {stop['cancel_to_finished_ms_median']:.2f} ms, worst {stop['cancel_to_finished_ms_max']:.2f} ms (target: 200 ms).
To show the engine really lets go: the next question's first token comes {stop['cancel_to_next_first_token_ms_median']:.0f} ms after the cancel (worst {stop['cancel_to_next_first_token_ms_max']:.0f} ms),
against {stop['idle_first_token_ms_median']:.0f} ms for the same question on an idle engine, so a stopped reply costs the next one about {stop['cancel_to_next_first_token_ms_median'] - stop['idle_first_token_ms_median']:.0f} ms (one decode step).
"""
    if repacked:
        weights_note = (
            "altiplano ran the file's Q4_1 weights from the Q8_0 copy it writes once on the CPU "
            "(`engine/repack.rs`: candle has no SIMD kernel for Q4_1); llama.cpp ran the Q4_1 weights. "
            f"Loaded as it is (`ALTIPLANO_REPACK=0`, in the same run), altiplano decoded at "
            f"{med['as stored']['decode_tps']:.1f} tokens/s ({stored_decode_ratio:.2f}× llama.cpp) with the first token after "
            f"{med['as stored']['ttft_s'] * 1000:.0f} ms ({stored_ttft_ratio:.2f}×).\n\n")
        rounding_note = ("the weights differ by the Q8_0 copy's rounding (at most 1/254 of a block's largest weight), "
                         "and activations are rounded to Q8_0 on our side, Q8_1 on llama.cpp's")
    else:
        weights_note = ""
        rounding_note = "both quantize activations for the quantized dot products, with different rounding"
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    marker = f"chat-vs-llamacpp:{Path(args.model).name}"
    section = f"""<!-- {marker}:start -->
## `{Path(args.model).name}`: `altiplano chat` against llama.cpp

Command: `bench/run.sh{"" if args.model.endswith("starter/SmolLM2-135M-Instruct.Q4_1.gguf") else " --model " + os.path.relpath(args.model, ROOT)}` (runs `bench/chat_vs_llamacpp.py --threads {args.threads} --max-tokens {args.max_tokens} --repeat {args.repeat}`).
Measured {datetime.date.today().isoformat()} at commit `{commit}` on {cpu}, {os.cpu_count()} cores, {args.threads} threads on both sides;
model `{Path(args.model).name}`; greedy; {len(PROMPTS)} prompts × {args.repeat} runs, each a fresh process / model instance; medians.

| | altiplano (mistral.rs 0.8.1, x86-64-v3, F32 activations) | llama.cpp (llama-cpp-python) | ratio |
| --- | --- | --- | --- |
| decode tokens/s | {med['altiplano']['decode_tps']:.1f} | {med['llama.cpp']['decode_tps']:.1f} | {decode_ratio:.2f}× |
| time to first token | {med['altiplano']['ttft_s'] * 1000:.0f} ms | {med['llama.cpp']['ttft_s'] * 1000:.0f} ms | {ttft_ratio:.2f}× (llama.cpp ÷ altiplano) |

{weights_note}Greedy replies identical to llama.cpp's in {same_text} of {len(rows['altiplano'])} runs. Both sides template the prompt to the same
number of tokens; the texts agree for the first words and then part (for example "body of saltwater" against "body of water"):
{rounding_note}, and greedy decoding of a 135M model amplifies the difference.
{stop_section}<!-- {marker}:end -->"""
    path = Path(args.write)
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    if start in text and end in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)
    print(section)


if __name__ == "__main__":
    sys.exit(main())
