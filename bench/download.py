#!/usr/bin/env python3
"""Download throughput of `altiplano models pull` against curl, same file, same server, same run.

Both fetch a file of random bytes from altiplano-testhub on 127.0.0.1 through the Hugging Face
resolve URL (a redirect to the server's CDN route, as on the real Hub). curl writes the bytes to
a file; altiplano also verifies the SHA-256 and links the file into the hub cache, and that time
is counted. Runs alternate; medians are reported and written to BENCHMARKS.md.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPO = "acme/bench-GGUF"
FILE = "bench.gguf"


def start_hub(testhub: str, root: Path):
    proc = subprocess.Popen([testhub, "--root", str(root)], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    m = re.match(r"listening on (http://127\.0\.0\.1:\d+)", line)
    if not m:
        proc.kill()
        sys.exit(f"altiplano-testhub did not start: {line!r}")
    return proc, m.group(1)


def timed(cmd, env=None):
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--altiplano", required=True)
    ap.add_argument("--testhub", required=True)
    ap.add_argument("--size-mib", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="altiplano-dl-bench-"))
    try:
        src = work / "hub" / REPO / FILE
        src.parent.mkdir(parents=True)
        print(f"==> writing {args.size_mib} MiB of random bytes")
        with open(src, "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(1 << 20))
        size = src.stat().st_size
        hub, url = start_hub(args.testhub, work / "hub")
        try:
            resolve = f"{url}/{REPO}/resolve/main/{FILE}"
            # The server hashes the file on first sight; do that before timing anything.
            subprocess.run(["curl", "-sfI", resolve], check=True, stdout=subprocess.DEVNULL)
            curl_times, synced, ours = [], [], []
            for i in range(args.repeat):
                out = work / "curl.out"
                curl_times.append(timed(["curl", "-sfL", "-o", str(out), resolve]))
                out.unlink()
                # The same, until the bytes are on disk (altiplano flushes before it says done).
                synced.append(timed(["sh", "-c", f'curl -sfL -o "{out}" "{resolve}" && sync -d "{out}"']))
                out.unlink()
                cache = work / f"cache{i}"
                env = dict(os.environ, HF_ENDPOINT=url, HF_HUB_CACHE=str(cache), ALTIPLANO_DATA_DIR=str(work / f"data{i}"))
                env.pop("HF_TOKEN", None)
                ours.append(timed([args.altiplano, "models", "pull", REPO, "--file", FILE], env=env))
                shutil.rmtree(cache)
                print(f"run {i + 1}: curl {curl_times[-1]:.2f} s, curl + fdatasync {synced[-1]:.2f} s, altiplano {ours[-1]:.2f} s")
        finally:
            hub.kill()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    c, cs, a = statistics.median(curl_times), statistics.median(synced), statistics.median(ours)
    mib = size / (1 << 20)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
    section = f"""<!-- download-vs-curl:start -->
## Downloads: `altiplano models pull` against curl

Command: `bench/download.sh` (runs `bench/download.py --size-mib {args.size_mib} --repeat {args.repeat}`).
Measured {time.strftime('%Y-%m-%d')} at commit `{commit}` on {cpu}, {os.cpu_count()} cores; a {mib:.0f} MiB file of random
bytes served by `altiplano-testhub` on 127.0.0.1 through the Hub's resolve URL (302 to the CDN route), written to the
same disk; {args.repeat} alternating runs, medians. altiplano's time includes flushing the file to disk (its progress
record never claims bytes that are not on disk), the SHA-256 check and linking the file into the hub cache; plain curl
leaves the bytes in the page cache, so "curl + fdatasync" (`curl … && sync -d FILE`) is the like-for-like figure.

| | altiplano models pull | curl + fdatasync | curl |
| --- | --- | --- | --- |
| time | {a:.2f} s | {cs:.2f} s | {c:.2f} s |
| throughput | {mib / a:.0f} MiB/s | {mib / cs:.0f} MiB/s | {mib / c:.0f} MiB/s |
| altiplano's ratio | | {cs / a:.2f}× | {c / a:.2f}× |
<!-- download-vs-curl:end -->"""
    print(section)
    if args.no_write:
        return
    bench = ROOT / "BENCHMARKS.md"
    text = bench.read_text()
    pattern = re.compile(r"<!-- download-vs-curl:start -->.*?<!-- download-vs-curl:end -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    bench.write_text(text)
    print("==> BENCHMARKS.md updated")


if __name__ == "__main__":
    main()
