"""A peer, optional: the LiteLLM proxy relaying the same fake upstream, measured side by
side with the direct SDK call exactly as ``bench.overhead`` measures the app::

    python -m bench.peer_litellm --litellm /path/to/venv/bin/litellm
                                 [--levels 1,50] [--repeat 3] [--json out.json]

LiteLLM is not a dependency of this project: install it in a virtualenv of its own, so
that its many pins never touch the app's, and pass its ``litellm`` command::

    python -m venv /tmp/litellm-venv
    /tmp/litellm-venv/bin/pip install 'litellm[proxy]==1.106.12'

(pinned below 1.107.0, a release reported as compromised). The proxy runs with one
worker, no database, a master key made for the run (it refuses to start without one),
the model cost map read from the package (``LITELLM_LOCAL_MODEL_COST_MAP``: no
download), no retries, and a model list that sends every ``bench-*`` model to the fake
upstream as an OpenAI-compatible endpoint. The client reads the proxy with the same SDK
as the direct call. The figures are those of ``bench.overhead`` with the proxy in the
"app" column: compare its direct column with the overhead run's to see how the
machine's load differed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

from chat.tests.live import free_port

from .common import (
    FakeUpstreamProcess,
    Process,
    machine_info,
    raise_open_files_limit,
    wait_for_port,
    workdir_for,
    write_json,
)
from .fakeserver import MODELS as UPSTREAM_MODELS
from .overhead import (
    MODELS,
    WARM_MODEL,
    Flight,
    Load,
    loads_for,
    model_result,
    report,
    run_direct,
    side_by_side,
)


def proxy_config(upstream_url: str) -> str:
    """LiteLLM's config.yaml: each bench model sent to the fake upstream, no retries.
    (JSON is YAML, so no YAML library is needed here.)"""
    import json

    return json.dumps(
        {
            "model_list": [
                {
                    "model_name": model,
                    "litellm_params": {
                        "model": f"openai/{model}",
                        "api_base": f"{upstream_url}/v1",
                        "api_key": "bench",
                    },
                }
                for model in UPSTREAM_MODELS
            ],
            "litellm_settings": {"num_retries": 0, "request_timeout": 60, "telemetry": False},
        },
        indent=2,
    )


class LiteLLMProxy(Process):
    """``litellm --config … --port N --num_workers 1`` on 127.0.0.1."""

    def __init__(self, executable: str, upstream_url: str, workdir: Path) -> None:
        self.port = free_port()
        self.key = "sk-bench-" + secrets.token_hex(16)  # for this run only
        config = workdir / "litellm.yaml"
        config.write_text(proxy_config(upstream_url))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "LITELLM_"))}
        env.update(
            LITELLM_MASTER_KEY=self.key,
            LITELLM_LOCAL_MODEL_COST_MAP="True",
            LITELLM_LOG="ERROR",
            PYTHONUNBUFFERED="1",
            NO_PROXY="127.0.0.1,localhost",
        )
        super().__init__(
            [
                executable,
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--num_workers",
                "1",
            ],
            env=env,
            log_path=workdir / "litellm.log",
        )

    def start(self, *, stdout_pipe: bool = False) -> LiteLLMProxy:
        super().start()
        wait_for_port(self.port, self, timeout=120)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def measure(
    upstream: FakeUpstreamProcess, proxy: LiteLLMProxy, loads: list[Load], direct_first: bool
) -> list[dict[str, Any]]:
    """One run: each level's direct and proxy phases, one after the other."""
    pids = {"app": proxy.pid, "upstream": upstream.pid}
    warm = Load(WARM_MODEL, 10, 2, 0.0)
    await run_direct(upstream.url, warm, Flight())
    await run_direct(proxy.url, warm, Flight(), proxy.key)
    out = []
    for load in loads:
        direct = functools.partial(run_direct, upstream.url, load)
        through_proxy = functools.partial(run_direct, proxy.url, load, api_key=proxy.key)
        out.append(await side_by_side(load, direct, through_proxy, pids, direct_first))
    return out


def run(
    executable: str,
    levels: list[int] | None = None,
    models: tuple[str, ...] = MODELS,
    repeat: int = 3,
    rounds_scale: float = 1.0,
) -> dict[str, Any]:
    """The side by side with the proxy, ``repeat`` times (a fresh proxy each time)."""
    levels = levels or [1, 50]
    raise_open_files_limit()
    workdir = workdir_for("litellm")
    out_models = []
    with FakeUpstreamProcess(workdir).start() as upstream:
        for model in models:
            loads = loads_for(model, levels, rounds_scale)
            rows: list[dict[str, Any]] = []
            for i in range(repeat):
                print(f"litellm {model}: run {i + 1} of {repeat}", flush=True)
                with LiteLLMProxy(executable, upstream.url, workdir) as proxy:
                    proxy.start()
                    rows += asyncio.run(measure(upstream, proxy, loads, i % 2 == 0))
            out_models.append(model_result(model, loads, rows))
    return {
        "db": "none",
        "peer": "LiteLLM proxy",
        "repeat": repeat,
        "server": f"the LiteLLM proxy ({executable}), one worker, no database",
        "machine": machine_info(postgres=False),
        "runs": out_models,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A peer: the LiteLLM proxy, side by side")
    parser.add_argument(
        "--litellm",
        default=shutil.which("litellm") or "",
        help="the litellm command of a virtualenv with litellm[proxy]",
    )
    parser.add_argument("--levels", default="1,50")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds-scale", type=float, default=1.0)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if not args.litellm or not Path(args.litellm).exists():
        parser.error("no litellm command: install litellm[proxy] (see this module's help)")
    levels = [int(x) for x in args.levels.split(",")]
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    result = run(args.litellm, levels, models, args.repeat, args.rounds_scale)
    write_json(args.json, result)
    # The tables say "app" for the relay measured; here it is the proxy.
    print(re.sub(r"\bapp\b", "proxy", report(result)))


if __name__ == "__main__":
    main()
