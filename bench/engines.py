#!/usr/bin/env python3
"""Both engines against llama.cpp's Python binding, same GGUF files, same prompts, same run.

For each model: altiplano's llama.cpp engine and its mistral.rs engine (each through
`core/examples/engine_bench.rs`, one process per run) and llama-cpp-python (in a process of its own,
taking turns with the llama.cpp engine for several rounds),
with the same threads, greedy sampling and prompts: decode tokens/s and time to first token on
short prompts, prompt processing on a ~2,000-token document, and a follow-up question's time to
first token with the document's KV cache kept against computed from scratch. Every other prompt
opens with a system message of its own, so nothing else benefits from a cache on either side.

Writes its section of BENCHMARKS.md.
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHORT = [
    "Write a short story about a llama who climbs a mountain.",
    "Explain how a bicycle works, step by step.",
    "List five facts about the ocean.",
]
QUESTION = "Summarize the report above in three sentences."
FOLLOW_UP = "Which section mentions the budget?"
SENTENCES = [
    "The committee met on the third floor to review the quarterly figures.",
    "Revenue from the northern region rose by four percent, driven by new contracts.",
    "The budget for maintenance was cut, and two projects were postponed to spring.",
    "Staff turnover stayed low, although the warehouse reported a shortage of drivers.",
    "A new supplier for packaging was chosen after a tender with six candidates.",
    "The board asked for a detailed plan for the data centre migration by June.",
    "Customer complaints fell after the support line extended its opening hours.",
    "Energy costs remain the largest risk for the second half of the year.",
]


def document(tokenize, target):
    """A report of about `target` tokens, numbered sections of varied sentences."""
    parts, n, section = [], 0, 1
    while n < target:
        parts.append(f"Section {section}. " + " ".join(SENTENCES[(section + i) % len(SENTENCES)] for i in range(4)))
        section += 1
        n = len(tokenize("\n".join(parts)))
    return "\n".join(parts)


def median(values):
    values = [v for v in values if v is not None and v == v]
    return statistics.median(values) if values else float("nan")


def fresh(tag):
    return {"role": "system", "content": f"Session {tag}. You are a helpful assistant."}


def peer(model, prompts, threads, long_prompt_tokens):
    """llama-cpp-python, measured as engine_bench measures altiplano (the document's prompt
    takes the same tokens: one template, one tokenizer)."""
    from llama_cpp import Llama

    started = time.perf_counter()
    llm = Llama(model_path=model, n_threads=threads, n_threads_batch=threads, n_ctx=8192, n_batch=512,
                verbose=False)
    load_ms = (time.perf_counter() - started) * 1000
    tag = 0

    def run(messages, max_tokens):
        start = time.perf_counter()
        first = last = None
        pieces = []
        for chunk in llm.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0,
                                                top_k=1, repeat_penalty=1.0, stream=True):
            delta = chunk["choices"][0]["delta"].get("content")
            if delta:
                now = time.perf_counter()
                first = first or now
                last = now
                pieces.append(delta)
        text = "".join(pieces)
        tokens = len(llm.tokenize(text.encode(), add_bos=False, special=False))
        decode = (tokens - 1) / (last - first) if first and last and last > first and tokens > 1 else None
        return text, (first - start) * 1000 if first else float("nan"), decode

    decode, ttft, texts = [], [], []
    for _ in range(prompts["short_repeat"]):
        for prompt in prompts["short"]:
            tag += 1
            text, t, d = run([fresh(tag), {"role": "user", "content": prompt}], prompts["max_tokens"])
            decode.append(d)
            ttft.append(t)
            texts.append(text)
    ask = prompts["document"] + "\n\n" + prompts["question"]
    prompt_tps, decode_after, reuse, scratch = [], [], [], []
    for _ in range(prompts["repeat"]):
        tag += 1
        first = [fresh(tag), {"role": "user", "content": ask}]
        text, t, d = run(first, 32)
        prompt_tps.append(long_prompt_tokens / (t / 1000))
        decode_after.append(d)
        second = first + [{"role": "assistant", "content": text}, {"role": "user", "content": prompts["follow_up"]}]
        _, t, _ = run(second, 16)
        reuse.append(t)
        llm.reset()
        _, t, _ = run(second, 16)
        scratch.append(t)
    return {
        "engine": "llama-cpp-python",
        "load_ms": load_ms,
        "decode_tps": median(decode),
        "ttft_ms": median(ttft),
        "prompt_tps": median(prompt_tps),
        "decode_after_long_prompt_tps": median(decode_after),
        "second_turn_ttft_reuse_ms": median(reuse),
        "second_turn_ttft_fresh_ms": median(scratch),
        "texts": texts,
    }


def cache_file(path):
    """Reads a model file once, so every engine loads it from the page cache."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def ours(binary, model, engine, threads, prompts_file):
    cache_file(model)
    out = subprocess.run([binary, model, engine, str(threads), prompts_file], check=True, capture_output=True,
                         text=True, env=dict(os.environ, RAYON_NUM_THREADS=str(threads)))
    return json.loads(out.stdout.strip().splitlines()[-1])


def theirs(model, threads, prompts_file, long_prompt_tokens):
    """llama-cpp-python in a process of its own, as each of altiplano's runs is."""
    cache_file(model)
    out = subprocess.run([sys.executable, __file__, "--peer-run", model, str(threads), prompts_file,
                          str(long_prompt_tokens)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def combine(runs):
    """Each figure's median over rounds (the texts and token counts of the first)."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, float):
            out[key] = median([r[key] for r in runs])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bench", help="the engine_bench example binary")
    ap.add_argument("--model", action="append")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=2, help="runs on the long document")
    ap.add_argument("--short-repeat", type=int, default=3, help="runs of the short prompts")
    ap.add_argument("--document-tokens", type=int, default=2000)
    ap.add_argument("--write", default=str(ROOT / "BENCHMARKS.md"))
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of altiplano's llama.cpp engine and llama-cpp-python taking turns (mistral.rs runs once)")
    ap.add_argument("--stop-latency", action="append", default=[],
                    help="JSON written by the stop_latency example, llama.cpp's first")
    ap.add_argument("--peer-run", nargs=4, metavar=("MODEL", "THREADS", "PROMPTS", "LONG_TOKENS"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer_run:
        model, threads, prompts_file, long_tokens = args.peer_run
        prompts = json.loads(Path(prompts_file).read_text())
        print(json.dumps(peer(model, prompts, int(threads), int(long_tokens))))
        return 0
    if not args.bench or not args.model:
        ap.error("--bench and at least one --model are required")

    from llama_cpp import Llama

    tables = []
    for model in args.model:
        vocab = Llama(model_path=model, vocab_only=True, verbose=False)
        doc = document(lambda s: vocab.tokenize(s.encode(), add_bos=False), args.document_tokens)
        prompts = {"short": SHORT, "document": doc, "question": QUESTION, "follow_up": FOLLOW_UP,
                   "max_tokens": args.max_tokens, "repeat": args.repeat, "short_repeat": args.short_repeat}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(prompts, f)
            prompts_file = f.name
        # The machine's speed drifts: the llama.cpp engine and the peer take turns, each in a
        # process of its own, and each figure is the median over the rounds.
        rounds = {"llamacpp": [], "peer": []}
        for r in range(args.rounds):
            order = ("llamacpp", "peer") if r % 2 == 0 else ("peer", "llamacpp")
            for who in order:
                if who == "llamacpp":
                    run = ours(args.bench, model, "llamacpp", args.threads, prompts_file)
                else:
                    # The same document's tokens (one template, one tokenizer); round 0 runs ours first.
                    run = theirs(model, args.threads, prompts_file, rounds["llamacpp"][0]["long_prompt_tokens"])
                rounds[who].append(run)
                print(model, who, r, {k: v for k, v in run.items() if k != "texts"}, flush=True)
        results = {"llamacpp": combine(rounds["llamacpp"]), "peer": combine(rounds["peer"]),
                   "paired": list(zip(rounds["llamacpp"], rounds["peer"]))}
        results["mistralrs"] = ours(args.bench, model, "mistralrs", args.threads, prompts_file)
        print(model, "mistralrs", {k: v for k, v in results["mistralrs"].items() if k != "texts"}, flush=True)
        os.unlink(prompts_file)
        tables.append((model, results))

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    cpu = "unknown CPU"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    models = " ".join(f"--model {os.path.relpath(m, ROOT)}" for m in args.model)
    out = [f"""<!-- engines:start -->
## Engines: llama.cpp and mistral.rs inside altiplano, against llama-cpp-python

Command: `bench/run.sh` (runs `bench/engines.py --threads {args.threads} --max-tokens {args.max_tokens} --repeat {args.repeat} --short-repeat {args.short_repeat} --rounds {args.rounds} {models}`).
Measured {datetime.date.today().isoformat()} at commit `{commit}` on {cpu}, {os.cpu_count()} cores, {args.threads} threads everywhere; greedy;
medians of {len(SHORT)} short prompts × {args.short_repeat} and of {args.repeat} runs on a {args.document_tokens}-token document per process; the llama.cpp
engine and llama-cpp-python take turns for {args.rounds} rounds, each in a process of its own, and each of their figures is the median
of the rounds (mistral.rs runs once). Higher is better
except for times; "ratio" is altiplano's figure against llama-cpp-python's, oriented so that above 1 means altiplano is faster.
The llama.cpp engine's ratio is the median of each round's ratio to the peer's run beside it (the machine's speed
drifts between rounds by as much as ±15 %, which pairing cancels), with the rounds' range in brackets.
Every load reads the file from the page cache; altiplano's is its second in the process, as llama-cpp-python's library
is loaded before its timed load.
"""]
    for model, r in tables:
        p, l, m = r["peer"], r["llamacpp"], r["mistralrs"]

        def oriented(x, y, key, higher_better):
            if not (x.get(key) and y.get(key)) or x[key] != x[key] or y[key] != y[key]:
                return None
            return (x[key] / y[key]) if higher_better else (y[key] / x[key])

        def row(name, key, unit, fmt, higher_better=True):
            def ratio(x):
                value = oriented(x, p, key, higher_better)
                return "–" if value is None else f"{value:.2f}×"

            def paired():
                # Each round's llama.cpp run against the peer's run next to it: the machine's
                # drift between rounds cancels out; the median of those ratios, and their range.
                values = sorted(v for v in (oriented(a, b, key, higher_better) for a, b in r["paired"]) if v)
                if not values:
                    return "–"
                return f"{median(values):.2f}× ({values[0]:.2f}–{values[-1]:.2f})"
            return (f"| {name} | {fmt.format(l[key])} {unit} | {paired()} | {fmt.format(m[key])} {unit} | {ratio(m)} | "
                    f"{fmt.format(p[key])} {unit} |")

        same = sum(a.strip() == b.strip() for a, b in zip(l["texts"], p["texts"]))
        out.append(f"""### `{Path(model).name}`

| figure | altiplano, llama.cpp engine | ratio | altiplano, mistral.rs engine | ratio | llama-cpp-python 0.3.36 |
| --- | --- | --- | --- | --- | --- |
{row("decode, short prompt", "decode_tps", "tok/s", "{:.1f}")}
{row("time to first token, short prompt", "ttft_ms", "ms", "{:.0f}", False)}
{row(f"prompt processing, {l['long_prompt_tokens']}-token prompt", "prompt_tps", "tok/s", "{:.0f}")}
{row("decode after that prompt", "decode_after_long_prompt_tps", "tok/s", "{:.1f}")}
{row("follow-up, time to first token, prefix reused", "second_turn_ttft_reuse_ms", "ms", "{:.0f}", False)}
{row("follow-up, time to first token, from scratch", "second_turn_ttft_fresh_ms", "ms", "{:.0f}", False)}
{row("load", "load_ms", "ms", "{:.0f}", False)}

On the llama.cpp engine the follow-up reused {l['second_turn_reused_tokens']} of its {l['second_turn_prompt_tokens']} prompt tokens' KV cache; its greedy
replies to the short prompts were identical to llama-cpp-python's in {same} of {len(l['texts'])}. A first load in a new process, which
also starts the engine: {l['first_load_ms']:.0f} ms on llama.cpp, {m['first_load_ms']:.0f} ms on mistral.rs.
""")
    stops = [json.loads(Path(p).read_text()) for p in args.stop_latency]
    if len(stops) == 2:
        line = lambda name, s: (f"| {name} | {s['cancel_to_finished_ms_median']:.2f} ms | {s['cancel_to_finished_ms_max']:.2f} ms | "
                                f"{s['cancel_to_next_first_token_ms_median']:.0f} ms | {s['idle_first_token_ms_median']:.0f} ms |")
        out.append(f"""### Stop

`ALTIPLANO_ENGINE=… target/debug/examples/stop_latency` (starter model; 10 long greedy replies, each stopped after 8
tokens). Cancel → the reply's `Finished` event is what the UI and the store act on (target: 200 ms); the next
question's first token after the cancel, against the same question on an idle engine, shows the engine let go.

| engine | cancel → Finished, median | worst | cancel → next reply's first token | idle first token |
| --- | --- | --- | --- | --- |
{line("llama.cpp", stops[0])}
{line("mistral.rs", stops[1])}
""")
    out.append("<!-- engines:end -->")
    section = "\n".join(out)
    path = Path(args.write)
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    start, end = "<!-- engines:start -->", "<!-- engines:end -->"
    if start in text and end in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)
    print(section)


if __name__ == "__main__":
    sys.exit(main())
