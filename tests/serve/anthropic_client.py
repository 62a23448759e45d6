"""The official `anthropic` Python client against `altiplano serve`'s Messages API
(cli/tests/serve.rs runs it).

Usage: python anthropic_client.py BASE_URL MODEL API_KEY
BASE_URL is the server's root (http://127.0.0.1:PORT, without /v1: the client adds it).
Exits non-zero, naming the check, when the server does not behave as Anthropic's API does.
"""

import sys

from anthropic import Anthropic, AuthenticationError, BadRequestError, NotFoundError

base, model, key = sys.argv[1], sys.argv[2], sys.argv[3]
client = Anthropic(base_url=base, api_key=key, max_retries=0, timeout=300)


def check(ok, what):
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


# Anthropic's current API has no sampling fields, and its SDK no longer takes them; older
# clients send `temperature`, which the server honours (0: greedy), so it goes as an extra field.
GREEDY = {"temperature": 0}
colours = [{"role": "user", "content": "Name three colours."}]
system = "You answer briefly."
# Asked once first so both compared replies meet llama.cpp's prompt cache in the same state
# (see openai_client.py).
client.messages.create(model=model, max_tokens=24, system=system, messages=colours, extra_body=GREEDY)
whole = client.messages.create(model=model, max_tokens=24, system=system, messages=colours, extra_body=GREEDY)
check(whole.type == "message" and whole.role == "assistant", f"a message comes back ({whole.type}, {whole.role})")
text = "".join(b.text for b in whole.content if b.type == "text")
check(bool(text.strip()), f"the reply has text ({text!r})")
check(whole.usage.input_tokens > 0 and whole.usage.output_tokens > 0, f"usage is given ({whole.usage})")
check(whole.stop_reason in ("end_turn", "max_tokens"), f"a stop reason ({whole.stop_reason})")

# Streamed, through the SDK's own event parser: the same text under greedy sampling.
with client.messages.stream(
    model=model, max_tokens=24, system=[{"type": "text", "text": system}], messages=colours, extra_body=GREEDY
) as stream:
    pieces = list(stream.text_stream)
    final = stream.get_final_message()
check("".join(pieces) == text, f"the streamed text equals the whole one ({''.join(pieces)!r} vs {text!r})")
check(len(pieces) > 1, f"the text streams in pieces ({len(pieces)})")
check(final.stop_reason == whole.stop_reason, f"both end for the same reason ({final.stop_reason})")
check(final.usage.output_tokens == whole.usage.output_tokens, f"streamed usage ({final.usage})")
check(final.usage.input_tokens == whole.usage.input_tokens, "the streamed message_start counts the prompt")

# max_tokens: stop_reason "max_tokens"; a stop sequence: "stop_sequence", naming it.
counting = [{"role": "user", "content": "Count from one to one hundred in words, separated by commas."}]
cut = client.messages.create(model=model, max_tokens=5, messages=counting, extra_body=GREEDY)
check(cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 5, f"max_tokens ({cut.stop_reason}, {cut.usage})")
full = client.messages.create(model=model, max_tokens=60, messages=counting, extra_body=GREEDY).content[0].text
check(len(full) >= 12, f"a reply long enough to stop in ({full!r})")
stop_word = full[len(full) // 2 : len(full) // 2 + 3]
stopped = client.messages.create(model=model, max_tokens=60, messages=counting, extra_body=GREEDY, stop_sequences=[stop_word])
check(stopped.content[0].text == full[: full.index(stop_word)], f"stop {stop_word!r}: {stopped.content[0].text!r}")
check(stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == stop_word, "the stop sequence is named")

# A conversation with an earlier reply in it.
turns = colours + [{"role": "assistant", "content": text}, {"role": "user", "content": "And one more?"}]
more = client.messages.create(model=model, max_tokens=16, messages=turns, extra_body=GREEDY)
check(bool(more.content[0].text.strip()), "a multi-turn conversation is answered")

# Errors are Anthropic's error objects with its statuses.
try:
    client.messages.create(model="no-such-model", max_tokens=8, messages=colours)
    check(False, "an unknown model is refused")
except NotFoundError as e:
    check(e.status_code == 404 and e.body["error"]["type"] == "not_found_error", f"an unknown model is a 404 ({e.body})")
try:
    Anthropic(base_url=base, api_key="wrong-key", max_retries=0).messages.create(model=model, max_tokens=8, messages=colours)
    check(False, "a wrong key is refused")
except AuthenticationError as e:
    check(e.body["error"]["type"] == "authentication_error", f"a wrong key is a 401 ({e.body})")
try:
    client.messages.create(model=model, max_tokens=8, messages=colours + [{"role": "assistant", "content": "Red,"}])
    check(False, "a prefill is refused")
except BadRequestError as e:
    check("prefill" in e.body["error"]["message"], f"a final assistant message is a clear 400 ({e.body})")
try:
    client.messages.create(
        model=model, max_tokens=8, messages=[{"role": "user", "content": [{"type": "image", "source": {}}]}]
    )
    check(False, "an image is refused")
except BadRequestError as e:
    check("text blocks only" in e.body["error"]["message"], f"an image block is a clear 400 ({e.body})")
print("all checks passed")
