"""The price of a model: ``price_for(provider, model)``.

Where a price comes from, first match wins:

1. a ``ModelPrice`` row an administrator set (source "admin");
2. the genai-prices package, for the providers it knows under our names (``PACKAGE_PROVIDERS``).
   The package ships its price data: nothing is fetched over the network (its optional
   ``UpdatePrices`` background download is never started here). Its tiered prices (for
   example a higher rate above 200,000 input tokens) are kept and applied per request;
3. a ``ModelPrice`` row copied from the package earlier (source "genai-prices"), for a
   model a newer package no longer lists;
4. the local model (``FREE_PROVIDERS``) costs nothing;
5. otherwise no price is known (OpenAI-compatible endpoints, unknown models): ``None``.

Answers are cached per process for ``PRICE_CACHE_SECONDS``; a price saved or deleted in
this process clears the cache at once (``UsageConfig.ready``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

logger = logging.getLogger(__name__)

# Our provider names (chat.providers.PROVIDER_REGISTRY) -> genai-prices provider ids.
PACKAGE_PROVIDERS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google",  # Gemini
    "mistral": "mistral",
}
# Providers that run on this machine: no money is spent.
FREE_PROVIDERS = frozenset({"local"})
PRICE_CACHE_SECONDS = 60.0
TOKENS_PER_PRICE_UNIT = Decimal(1_000_000)
ZERO = Decimal(0)

# Where a Price came from (ModelPrice.Source values, plus the local model's).
SOURCE_ADMIN = "admin"
SOURCE_PACKAGE = "genai-prices"
SOURCE_LOCAL = "local"

Tiers = tuple[tuple[int, Decimal], ...]


@dataclass(frozen=True, slots=True)
class Price:
    """A model's price in US dollars per million tokens.

    ``source`` is "admin", "genai-prices" or "local". ``input_tiers`` and
    ``output_tiers`` are the package's thresholds, as ``(above_input_tokens, price)``
    pairs in rising order: a request with more input tokens than a threshold pays that
    tier's price for all its tokens (the providers' "cliff" rule). Reasoning (thinking)
    tokens are output tokens and pay the output price."""

    input_per_mtok: Decimal
    output_per_mtok: Decimal
    source: str
    input_tiers: Tiers = ()
    output_tiers: Tiers = ()

    def for_request(self, input_tokens: int) -> Price:
        """The flat price (no tiers) that applies to a request with ``input_tokens``
        input tokens: the one to copy onto its usage record."""
        if not self.input_tiers and not self.output_tiers:
            return self
        return replace(
            self,
            input_per_mtok=_tier_price(self.input_per_mtok, self.input_tiers, input_tokens),
            output_per_mtok=_tier_price(self.output_per_mtok, self.output_tiers, input_tokens),
            input_tiers=(),
            output_tiers=(),
        )

    def cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        """The cost in US dollars of a request with these token counts (exact, not
        rounded). ``output_tokens`` already includes any reasoning tokens: they are not
        added again."""
        flat = self.for_request(input_tokens)
        return (
            Decimal(input_tokens) * flat.input_per_mtok
            + Decimal(output_tokens) * flat.output_per_mtok
        ) / TOKENS_PER_PRICE_UNIT


def _tier_price(base: Decimal, tiers: Tiers, input_tokens: int) -> Decimal:
    for start, price in reversed(tiers):
        if input_tokens > start:
            return price
    return base


# --- the genai-prices package ------------------------------------------------------------


def _flat_and_tiers(value: Any) -> tuple[Decimal | None, Tiers]:
    """A genai-prices price value (a Decimal, TieredPrices or None) as base + tiers."""
    if value is None:
        return None, ()
    if isinstance(value, Decimal):
        return value, ()
    base = getattr(value, "base", None)
    tiers = tuple((int(tier.start), tier.price) for tier in getattr(value, "tiers", ()))
    return base, tiers


def package_price(provider: str, model: str) -> Price | None:
    """The genai-prices package's current price for ``provider``/``model`` (our names),
    or None when the package does not know the provider or the model, or has no token
    price for it. Reads the data shipped with the package; never the network."""
    provider_id = PACKAGE_PROVIDERS.get(provider)
    if provider_id is None or not model:
        return None
    from genai_prices import Usage, calc_price

    model_ref = model.removeprefix("models/")  # Gemini's full resource name
    try:
        calculation = calc_price(
            Usage(input_tokens=0, output_tokens=0), model_ref, provider_id=provider_id
        )
    except LookupError:
        return None
    prices = calculation.model_price
    input_base, input_tiers = _flat_and_tiers(getattr(prices, "input_mtok", None))
    output_base, output_tiers = _flat_and_tiers(getattr(prices, "output_mtok", None))
    if input_base is None and output_base is None:
        return None  # priced per request, per image...: not a token price
    return Price(
        input_per_mtok=input_base if input_base is not None else ZERO,
        output_per_mtok=output_base if output_base is not None else ZERO,
        source=SOURCE_PACKAGE,
        input_tiers=input_tiers,
        output_tiers=output_tiers,
    )


_warmed = False


def prices_warm() -> None:
    """Load the genai-prices package and its data (about 0.2 s, once per process) so
    that the first reply's metering does not pay for it. Safe to call from any thread,
    any number of times; never raises."""
    global _warmed
    if _warmed:
        return
    _warmed = True
    try:
        package_price("openai", "gpt-4o-mini")
    except Exception:  # a broken package shows up in the first metering's log instead
        logger.debug("genai-prices could not be loaded ahead", exc_info=True)


# --- lookup with a short per-process cache -------------------------------------------------


class _PriceCache:
    """(provider, model) -> Price or None, each for ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[tuple[str, str], tuple[float, Price | None]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> tuple[bool, Price | None]:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, key: tuple[str, str], price: Price | None) -> None:
        with self._lock:
            if len(self._entries) > 10_000:  # many model names: start again
                self._entries.clear()
            self._entries[key] = (time.monotonic() + self.ttl, price)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_cache = _PriceCache(PRICE_CACHE_SECONDS)


def price_cache_clear(**_signal_kwargs: Any) -> None:
    """Forget every cached price in this process (connected to ModelPrice saves and
    deletes; tests call it too)."""
    _cache.clear()


def price_for(provider: str, model: str) -> Price | None:
    """The price of ``model`` at ``provider`` (our provider names), in US dollars per
    million tokens, or None when none is known (see the module's docstring for the
    order). Reads the database at most once per ``PRICE_CACHE_SECONDS`` per model;
    call from sync code."""
    key = (provider, model)
    found, price = _cache.get(key)
    if found:
        return price
    price = _price_lookup(provider, model)
    _cache.put(key, price)
    return price


def _price_lookup(provider: str, model: str) -> Price | None:
    from .models import ModelPrice

    row = (
        ModelPrice.objects.filter(provider=provider, model=model)
        .only("input_per_mtok", "output_per_mtok", "source")
        .first()
    )
    if row is not None and row.source == ModelPrice.Source.ADMIN:
        return Price(row.input_per_mtok, row.output_per_mtok, SOURCE_ADMIN)
    price = package_price(provider, model)
    if price is not None:
        return price
    if row is not None:
        return Price(row.input_per_mtok, row.output_per_mtok, SOURCE_PACKAGE)
    if provider in FREE_PROVIDERS:
        return Price(ZERO, ZERO, SOURCE_LOCAL)
    return None
