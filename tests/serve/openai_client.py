"""The official `openai` Python client against `altiplano serve` (cli/tests/serve.rs runs it).

Usage: python openai_client.py BASE_URL API_KEY
Exits non-zero, naming the check, when the server does not behave as OpenAI's API does.
"""

import json
import sys
import threading
import urllib.error
import urllib.request

from openai import AuthenticationError, BadRequestError, NotFoundError, OpenAI

base, key = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=base, api_key=key, max_retries=0, timeout=300)


def check(ok, what):
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


# The model list: the served model, with its context length.
models = client.models.list().data
check(len(models) == 1, f"one model is listed ({models})")
model = models[0].id
check((models[0].model_extra or {}).get("context_length", 0) > 0, "the model's context length is listed")

# Whole and streamed replies agree under greedy sampling; usage is reported both ways.
colours = [{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": "Name three colours."}]
# (Asked once first: llama.cpp keeps the prompt's cache between requests, and a prompt computed
# partly from that cache can differ from one computed whole in the last bits of the logits, so
# the two compared here are both asked with the cache in the same state.)
client.chat.completions.create(model=model, messages=colours, temperature=0, max_tokens=24)
whole = client.chat.completions.create(model=model, messages=colours, temperature=0, max_tokens=24)
text = whole.choices[0].message.content
check(bool(text and text.strip()), f"a whole reply has text ({text!r})")
check(whole.usage.prompt_tokens > 0 and whole.usage.completion_tokens > 0, f"usage is given ({whole.usage})")
stream = client.chat.completions.create(
    model=model, messages=colours, temperature=0, max_tokens=24, stream=True, stream_options={"include_usage": True}
)
pieces, usage, finish = [], None, None
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.content:
            pieces.append(choice.delta.content)
        if choice.finish_reason:
            finish = choice.finish_reason
check("".join(pieces) == text, f"the streamed text equals the whole one ({''.join(pieces)!r} vs {text!r})")
check(len(pieces) > 1, f"the text streams in pieces ({len(pieces)})")
check(finish == whole.choices[0].finish_reason, f"both end for the same reason ({finish})")
check(usage is not None and usage.completion_tokens == whole.usage.completion_tokens, f"streamed usage ({usage})")

# max_tokens (and max_completion_tokens) cut the reply: finish_reason "length".
counting = [{"role": "user", "content": "Count from one to one hundred in words, separated by commas."}]
cut = client.chat.completions.create(model=model, messages=counting, temperature=0, max_tokens=5)
check(cut.choices[0].finish_reason == "length", f"max_tokens ends with length ({cut.choices[0].finish_reason})")
check(cut.usage.completion_tokens == 5, f"five tokens written ({cut.usage.completion_tokens})")
cut2 = client.chat.completions.create(model=model, messages=counting, temperature=0, max_completion_tokens=5)
check(cut2.choices[0].message.content == cut.choices[0].message.content, "max_completion_tokens is max_tokens")

# A stop sequence ends the reply before it, whole and streamed.
full = client.chat.completions.create(model=model, messages=counting, temperature=0, max_tokens=60).choices[0].message.content
check(len(full) >= 12, f"a reply long enough to stop in ({full!r})")
stop_word = full[len(full) // 2 : len(full) // 2 + 3]
expected = full[: full.index(stop_word)]
stopped = client.chat.completions.create(model=model, messages=counting, temperature=0, max_tokens=60, stop=[stop_word])
check(stopped.choices[0].message.content == expected, f"stop {stop_word!r}: {stopped.choices[0].message.content!r}")
check(stopped.choices[0].finish_reason == "stop", "a stop sequence ends with stop")
streamed = client.chat.completions.create(
    model=model, messages=counting, temperature=0, max_tokens=60, stop=stop_word, stream=True
)
check("".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == expected, "a stop sequence, streamed")

# Errors are OpenAI's error objects with OpenAI's statuses.
try:
    client.chat.completions.create(model="no-such-model", messages=colours)
    check(False, "an unknown model is refused")
except NotFoundError as e:
    check(e.status_code == 404 and e.body.get("code") == "model_not_found", f"an unknown model is a 404 ({e.body})")
try:
    client.chat.completions.create(model=model, messages=colours, n=2)
    check(False, "n = 2 is refused")
except BadRequestError as e:
    check(e.body.get("param") == "n", f"n = 2 is a 400 naming n ({e.body})")
try:
    OpenAI(base_url=base, api_key="wrong-key", max_retries=0).models.list()
    check(False, "a wrong key is refused")
except AuthenticationError as e:
    check(e.status_code == 401 and e.body.get("code") == "invalid_api_key", f"a wrong key is a 401 ({e.body})")


def raw(method, path, body=None):
    request = urllib.request.Request(f"{base}{path}", data=body, method=method)
    request.add_header("Authorization", f"Bearer {key}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


status, body = raw("POST", "/chat/completions", b'{"model": "x", "messages": [')
check(status == 400 and body["error"]["type"] == "invalid_request_error", f"malformed JSON is a 400 ({body})")
status, body = raw("GET", "/embeddings")
check(status == 404 and body["error"]["code"] == "unknown_url", f"an unknown URL is a 404 ({body})")

# Four streamed requests at once all complete.
results = [None] * 4


def ask(i):
    s = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": f"Say the number {i + 1}."}],
        max_tokens=12,
        seed=i,
        stream=True,
    )
    results[i] = "".join(c.choices[0].delta.content or "" for c in s if c.choices)


threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
check(all(r for r in results), f"four concurrent streams complete ({results})")

# A client that closes mid-stream: the server stops that reply (cli/tests/serve.rs reads its log).
long = client.chat.completions.create(model=model, messages=counting, max_tokens=400, temperature=0, stream=True)
for i, _ in enumerate(long):
    if i == 3:
        break
long.close()
after = client.chat.completions.create(model=model, messages=colours, temperature=0, max_tokens=24)
check(bool(after.choices[0].message.content), "the model answers the next request")
print("all checks passed")
