"""What `altiplano serve` does at its edges, seen from plain HTTP (cli/tests/serve.rs runs it):
a full queue, browsers' cross-origin requests, and requests kept as conversations.

Usage: python limits.py BASE_URL MODEL CHECK
BASE_URL is the server's /v1 URL; CHECK is one of:
  queue     the server was started with --queue 1: a second request while one streams is a
            429 with Retry-After, in OpenAI's error format and in Anthropic's; afterwards the
            server answers again
  cors      the server was started with --cors https://app.example: that origin's preflight
            and request are allowed, another origin's are not
  no-cors   the server was started without --cors: no origin is allowed
  keep      one chat completion and one Anthropic message, for the conversation test to find
Exits non-zero, naming the check, when the server does not behave so.
"""

import json
import sys
import threading
import urllib.error
import urllib.request

base, model, what = sys.argv[1], sys.argv[2], sys.argv[3]
root = base.removesuffix("/v1")


def check(ok, what):
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def call(method, url, body=None, headers=None):
    """The status, the headers and the body (JSON when it is) of one request."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            raw = response.read()
            status, got = response.status, response.headers
    except urllib.error.HTTPError as e:
        raw, status, got = e.read(), e.code, e.headers
    try:
        return status, got, json.loads(raw) if raw else None
    except ValueError:
        return status, got, raw.decode(errors="replace")


counting = [{"role": "user", "content": "Count from one to one hundred in words, separated by commas."}]
hello = [{"role": "user", "content": "Say hello."}]

if what == "queue":
    # One long reply holds the only place; it is read slowly, a line at a time.
    request = urllib.request.Request(
        f"{base}/chat/completions",
        data=json.dumps({"model": model, "messages": counting, "max_tokens": 400, "temperature": 0, "stream": True}).encode(),
        method="POST",
    )
    request.add_header("Content-Type", "application/json")
    holding = urllib.request.urlopen(request, timeout=300)
    first = holding.readline()
    check(first.startswith(b"data:"), f"the first request streams ({first!r})")
    status, headers, body = call("POST", f"{base}/chat/completions", {"model": model, "messages": hello, "max_tokens": 4})
    check(status == 429, f"a request beyond the queue is a 429 ({status}, {body})")
    retry = headers.get("Retry-After", "")
    check(retry.isdigit() and int(retry) >= 1, f"it says when to come back (Retry-After: {retry!r})")
    check(
        body["error"]["code"] == "rate_limit_exceeded" and "--queue" in body["error"]["message"],
        f"the error is OpenAI's, and says how to allow more ({body})",
    )
    status, headers, body = call("POST", f"{base}/messages", {"model": model, "messages": hello, "max_tokens": 4})
    check(
        status == 429 and body["type"] == "error" and body["error"]["type"] == "rate_limit_error",
        f"the Messages API's 429 is Anthropic's error ({status}, {body})",
    )
    check(headers.get("Retry-After", "").isdigit(), "with Retry-After too")
    holding.close()
    # The place is free once the server notices the client left; a few tries, each answered at once.
    for attempt in range(50):
        status, headers, body = call("POST", f"{base}/chat/completions", {"model": model, "messages": hello, "max_tokens": 4})
        if status != 429:
            break
        threading.Event().wait(0.1)
    check(status == 200 and body["choices"][0]["message"]["content"], f"the server answers again ({status}, {body})")
elif what in ("cors", "no-cors"):
    allowed, other = "https://app.example", "https://elsewhere.example"
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    status, headers, _ = call("OPTIONS", f"{base}/chat/completions", headers={"Origin": allowed, **preflight})
    granted = headers.get("Access-Control-Allow-Origin")
    if what == "cors":
        check(granted == allowed, f"the named origin's preflight is allowed ({status}, {granted!r})")
        methods = headers.get("Access-Control-Allow-Methods", "")
        check("POST" in methods, f"POST is allowed ({methods!r})")
        check("authorization" in headers.get("Access-Control-Allow-Headers", "").lower(), "with a key")
        status, headers, _ = call("GET", f"{base}/models", headers={"Origin": allowed})
        check(status == 200 and headers.get("Access-Control-Allow-Origin") == allowed, "its requests are answered for it")
    else:
        check(granted is None, f"without --cors no origin is allowed ({granted!r})")
    status, headers, _ = call("OPTIONS", f"{base}/chat/completions", headers={"Origin": other, **preflight})
    check(headers.get("Access-Control-Allow-Origin") is None, "another origin's preflight is not allowed")
    status, headers, _ = call("GET", f"{base}/models", headers={"Origin": other})
    check(headers.get("Access-Control-Allow-Origin") is None, "nor are its requests readable by its page")
elif what == "keep":
    status, _, body = call(
        "POST",
        f"{base}/chat/completions",
        {"model": model, "messages": [{"role": "system", "content": "Be brief."}, *counting], "max_tokens": 12, "temperature": 0},
    )
    check(status == 200, f"a chat completion ({status}, {body})")
    print("REPLY " + json.dumps(body["choices"][0]["message"]["content"]))
    status, _, body = call(
        "POST", f"{root}/v1/messages", {"model": model, "messages": [{"role": "user", "content": "Name a fruit."}], "max_tokens": 8}
    )
    check(status == 200, f"an Anthropic message ({status}, {body})")
else:
    check(False, f"unknown check {what!r}")
print("all checks passed")
