#!/usr/bin/env python3
"""PDF text extraction: `altiplano extract --json` (pdf_oxide in an isolated child process, then
clean-up) against `pdftotext` (poppler) on the same real-world PDFs, in the same run.

Usage: pdf_extract.py ALTIPLANO_BINARY CORPUS_DIR   (CORPUS_DIR from bench/pdf_corpus.sh)

Speed: pages per second over the whole corpus (wall time of each tool on each file, one file at
a time, both tools timed the same way: a fresh process per file). Agreement: per page, the words
(NFKC, lower-cased, runs of letters and digits) of both tools compared as multisets; F1 =
2 * common / (ours + theirs), summed over pages. Prints a Markdown table for BENCHMARKS.md.
"""
import collections
import json
import re
import subprocess
import sys
import time
import unicodedata

WORD = re.compile(r"\w+", re.UNICODE)


def words(text):
    return collections.Counter(WORD.findall(unicodedata.normalize("NFKC", text).lower()))


def timed(cmd):
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, timeout=300)
    return time.perf_counter() - start, out


def main():
    binary, corpus = sys.argv[1], sys.argv[2]
    rows = [line.rstrip("\n").split("\t") for line in open(f"{corpus}/manifest.tsv")][1:]
    per_package = collections.OrderedDict()
    totals = collections.Counter()
    failures = []
    for pages, _bytes, package, _producer, rel in rows:
        path = f"{corpus}/{rel}"
        package = package.split("=")[0]
        ours_s, ours = timed([binary, "extract", "--json", path])
        theirs_s, theirs = timed(["pdftotext", "-enc", "UTF-8", path, "-"])
        if ours.returncode != 0:
            failures.append(f"{rel}: {ours.stderr.decode(errors='replace').strip()}")
            continue
        doc = json.loads(ours.stdout)
        ours_pages = {p["number"]: p["text"] for p in doc["pages"]}
        theirs_pages = theirs.stdout.decode("utf-8", errors="replace").split("\f")
        common = ours_n = theirs_n = 0
        for number in range(1, int(pages) + 1):
            a = words(ours_pages.get(number, ""))
            b = words(theirs_pages[number - 1] if number - 1 < len(theirs_pages) else "")
            common += sum((a & b).values())
            ours_n += sum(a.values())
            theirs_n += sum(b.values())
        stats = per_package.setdefault(package, collections.Counter())
        for c in (stats, totals):
            c["files"] += 1
            c["pages"] += int(pages)
            c["ours_s"] += ours_s
            c["theirs_s"] += theirs_s
            c["common"] += common
            c["ours_words"] += ours_n
            c["theirs_words"] += theirs_n
            c["page_count_match"] += int(len(doc["pages"]) == int(pages))

    def line(name, c):
        f1 = 2 * c["common"] / max(1, c["ours_words"] + c["theirs_words"])
        recall = c["common"] / max(1, c["theirs_words"])
        return (
            f"| {name} | {c['files']} | {c['pages']} | {c['pages'] / c['ours_s']:.0f} | "
            f"{c['pages'] / c['theirs_s']:.0f} | {c['theirs_s'] / c['ours_s']:.2f}x | {f1:.3f} | {recall:.3f} |"
        )

    print("| package | files | pages | altiplano pages/s | pdftotext pages/s | speed vs pdftotext | word F1 | recall of pdftotext's words |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, c in per_package.items():
        print(line(name, c))
    print(line("**all**", totals))
    print(f"\npage counts equal to pdfinfo's: {totals['page_count_match']} of {totals['files']} files")
    for f in failures:
        print(f"- failed: {f}")


if __name__ == "__main__":
    main()
