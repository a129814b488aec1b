"""What a model can read and whether it reasons: ``ModelCapabilities``, and the tables
used when a provider's model list does not say.

``BaseProvider.capabilities(model)`` answers per model. Where the provider's own model
list says (Anthropic's ``capabilities.image_input`` / ``pdf_input`` / ``thinking`` /
``effort``, Mistral's ``capabilities.vision`` / ``reasoning``, Gemini's ``thinking``),
that answer is remembered when the list is fetched (``BaseProvider.remember_model_facts``)
and wins; the tables below fill in the rest. ``None`` means unknown: the app then sends
the file anyway and shows the provider's error if it refuses.

Where the facts in the tables come from (check them when a provider ships new models):

* OpenAI: the model pages of platform.openai.com/docs/models ("Input: text, image"),
  the PDF guide (platform.openai.com/docs/guides/pdf-files: PDF input works on the
  vision models) and the reasoning guide (platform.openai.com/docs/guides/reasoning:
  the o-series and GPT-5, except ``gpt-5-chat``, are reasoning models; ``minimal``
  effort is GPT-5's only). o1-mini, o1-preview and o3-mini take no images.
* Anthropic: docs.claude.com "Vision" (every Claude 3 and later model reads images),
  "PDF support" (every current model) and "Extended thinking" (Claude 3.7 Sonnet and
  Claude 4 and later; ``effort`` from Claude Opus 4.5 on). Claude 2 reads text only.
* Google: ai.google.dev/gemini-api/docs/models (every Gemini model takes images and
  PDFs), "Thinking" (Gemini 2.5 takes ``thinking_budget``; Gemini 3 ``thinking_level``
  and, for compatibility, ``thinking_budget``).
* Mistral: docs.mistral.ai/getting-started/models (Pixtral, Mistral Small 3.1+ (2503),
  Mistral Medium 3 (2505) and later read images; Magistral reasons). Mistral reads PDFs
  only by URL (``document_url``), so PDFs are not native here: the app sends their text.
* The local model (SmolLM2 by llama-cpp-python) reads text only. OpenAI-compatible
  servers (Ollama, vLLM, OpenRouter...) can serve anything: unknown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ModelCapabilities:
    """What a model takes: ``images`` (PNG, JPEG, WebP, GIF parts), ``pdf`` (PDF file
    parts, read natively), ``reasoning`` (it thinks before answering, and reasoning
    settings apply). Each is True, False or None (unknown: try and show the provider's
    error)."""

    images: bool | None = None
    pdf: bool | None = None
    reasoning: bool | None = None

    def over(self, fallback: ModelCapabilities) -> ModelCapabilities:
        """These capabilities, with ``fallback``'s answer where these say None."""
        return ModelCapabilities(
            images=self.images if self.images is not None else fallback.images,
            pdf=self.pdf if self.pdf is not None else fallback.pdf,
            reasoning=self.reasoning if self.reasoning is not None else fallback.reasoning,
        )

    @classmethod
    def from_facts(cls, facts: Mapping[str, bool | None]) -> ModelCapabilities:
        """From remembered model-list facts (``{"images": True, ...}``; missing = None)."""
        return cls(facts.get("images"), facts.get("pdf"), facts.get("reasoning"))


UNKNOWN = ModelCapabilities()
TEXT_ONLY = ModelCapabilities(images=False, pdf=False, reasoning=False)
_VISION = ModelCapabilities(images=True, pdf=True, reasoning=False)
_VISION_REASONING = ModelCapabilities(images=True, pdf=True, reasoning=True)

# A table: (pattern matched at the start of the lower-cased model id, capabilities);
# the first pattern that matches wins.
Table = tuple[tuple[re.Pattern[str], ModelCapabilities], ...]


def _table(*rows: tuple[str, ModelCapabilities]) -> Table:
    return tuple((re.compile(pattern), capabilities) for pattern, capabilities in rows)


def lookup(table: Table, model: str) -> ModelCapabilities:
    """The capabilities of ``model`` in ``table`` (UNKNOWN when no row matches).
    Fine-tuned OpenAI ids (``ft:gpt-4o-mini:...``) and Gemini's ``models/`` prefix
    count as their base model."""
    model_id = model.lower().removeprefix("ft:").removeprefix("models/")
    for pattern, capabilities in table:
        if pattern.match(model_id):
            return capabilities
    return UNKNOWN


OPENAI_MODELS: Table = _table(
    (r"o1-(mini|preview)", ModelCapabilities(images=False, pdf=False, reasoning=True)),
    (r"o3-mini", ModelCapabilities(images=False, pdf=False, reasoning=True)),
    (r"o[1-9]", _VISION_REASONING),
    (r"gpt-5(\.\d+)?-chat", _VISION),
    (r"gpt-5", _VISION_REASONING),
    (r"(gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5)", _VISION),
    (r"gpt-4-turbo", ModelCapabilities(images=True, pdf=None, reasoning=False)),
    (r"gpt-(3\.5|4)", TEXT_ONLY),
)

# OpenAI's reasoning models that take ``reasoning_effort: "minimal"`` (GPT-5); the
# o-series starts at "low".
OPENAI_MINIMAL_EFFORT = re.compile(r"gpt-5")

ANTHROPIC_MODELS: Table = _table(
    (r"claude-(instant|[12])", TEXT_ONLY),
    (r"claude-3-7", _VISION_REASONING),
    (r"claude-3", _VISION),
    (r"claude-", _VISION_REASONING),  # Claude 4 and later
)

# Claude models that take ``output_config.effort`` when the model list does not say:
# Opus 4.5, and every model from 4.6 on.
ANTHROPIC_EFFORT = re.compile(r"claude-(opus-4-5|(opus|sonnet|haiku)-(4-[6-9]|[5-9])(?!\d))")

GEMINI_MODELS: Table = _table(
    (r"gemini-(2\.5|[3-9])", _VISION_REASONING),
    (r"gemini-", _VISION),
    (r"gemma-3", ModelCapabilities(images=True, pdf=None, reasoning=False)),
)

# Gemini models that take ``thinking_level`` (Gemini 3 and later); 2.5 takes only a
# token budget.
GEMINI_THINKING_LEVELS = re.compile(r"(models/)?gemini-([3-9]|\d\d)")

_IMAGES_NO_PDF = ModelCapabilities(images=True, pdf=False, reasoning=False)
MISTRAL_MODELS: Table = _table(
    (r"pixtral", _IMAGES_NO_PDF),
    (r"magistral", ModelCapabilities(images=None, pdf=False, reasoning=True)),
    (r"mistral-medium-(latest|250[5-9]|25[1-9]\d|2[6-9]\d\d)", _IMAGES_NO_PDF),
    (r"mistral-small-(latest|250[3-9]|25[1-9]\d|2[6-9]\d\d)", _IMAGES_NO_PDF),
    (r"(codestral|devstral|open-mistral|open-mixtral|mistral-tiny)", TEXT_ONLY),
    (r"", ModelCapabilities(images=None, pdf=False, reasoning=None)),
)
