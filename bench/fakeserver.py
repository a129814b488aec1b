"""A paced fake OpenAI-compatible upstream in a process of its own, so the app server,
the upstream and the load generator do not share one GIL::

    python -m bench.fakeserver [--port N] [--lifetime SECONDS]

It prints ``PORT <n>`` when it listens, answers ``GET /v1/models`` and streams
``POST /v1/chat/completions`` in OpenAI's wire format. The model name sets the pace:
``bench-<chunks>x<ms>`` streams ``<chunks>`` text deltas, ``<ms>`` milliseconds apart
(``bench-20x20``: 20 deltas, 20 ms apart, then the finish reason, usage and [DONE]).
Any other model name gets ``bench-20x20``. It stops by itself after ``--lifetime``
seconds, or when its parent process goes away.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import signal
import sys
import time

from chat.tests.fakes.openai_fake import install_openai_models, stream_chunks
from chat.tests.fakes.server import FakeUpstream, RecordedRequest, StreamResponse

DEFAULT_SHAPE = (20, 20)
# The models the app is told about (BENCH_MODELS): the app accepts only these.
MODELS = (
    "bench-20x20",  # the overhead benchmark and the load test: 20 deltas, 20 ms apart
    "bench-200x20",  # a reply of 4 s, nearer a real model's
    "bench-1x0",
    "bench-2x0",
    "bench-20000x0",  # relay: 20,000 deltas as fast as they go
    "bench-40x1000",  # capacity: a delta a second for 40 s, ...
    "bench-60x1000",
    "bench-90x1000",
    "bench-120x1000",
)
_MODEL = re.compile(r"bench-(\d+)x(\d+)")
WORDS = ("The ", "quick ", "brown ", "fox ", "jumps ", "over ", "the ", "lazy ", "dog. ", "\n")


def model_shape(model: str) -> tuple[int, int]:
    """(chunks, milliseconds between chunks) of a bench model name."""
    match = _MODEL.fullmatch(model)
    if not match:
        return DEFAULT_SHAPE
    return int(match.group(1)), int(match.group(2))


def reply_deltas(chunks: int) -> list[str]:
    """The text deltas of a reply of ``chunks`` chunks (the same every time)."""
    return [WORDS[i % len(WORDS)] for i in range(chunks)]


# Every word ends with exactly one space or newline and holds no other: a text made of
# whole deltas holds as many deltas as it has spaces and newlines (count_deltas).
assert all(w.count(" ") + w.count("\n") == 1 and w[-1] in " \n" for w in WORDS)


def count_deltas(text: str) -> int:
    """How many of the upstream's text deltas ``text`` holds: a relay may send several
    deltas as one event, so tokens are counted in the text, not by events."""
    return text.count(" ") + text.count("\n")


def expected_reply(model: str) -> str:
    """The whole reply text the app should save for ``model``."""
    return "".join(reply_deltas(model_shape(model)[0]))


@functools.lru_cache(maxsize=64)
def _chunks_for(model: str) -> tuple[object, ...]:
    chunks, pause_ms = model_shape(model)
    return tuple(
        stream_chunks(reply_deltas(chunks), model=model, usage=(12, chunks), pause=pause_ms / 1000)
    )


def _answer(request: RecordedRequest) -> StreamResponse:
    try:
        model = str(request.json().get("model") or "")
    except ValueError:
        model = ""
    return StreamResponse(_chunks_for(model))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lifetime", type=float, default=1800.0, help="seconds before exiting")
    args = parser.parse_args(argv)
    parent = os.getppid()
    upstream = FakeUpstream().start()
    install_openai_models(upstream, MODELS)
    upstream.set_default("POST", "/v1/chat/completions", _answer)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"PORT {upstream.port}", flush=True)
    deadline = time.monotonic() + args.lifetime
    try:
        while time.monotonic() < deadline and os.getppid() == parent:
            time.sleep(1.0)
            upstream.requests.clear()  # the recording is for tests; here it only grows
    finally:
        upstream.stop()


if __name__ == "__main__":
    main()
