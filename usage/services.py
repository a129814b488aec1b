"""Writing usage records and keeping model prices in step with genai-prices.

Other apps call these (the reply run's final database step, the API); they never write
``usage`` tables themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from .models import COST_DIGITS, ModelPrice, UsageRecord
from .prices import package_price, price_cache_clear, price_for

COST_QUANTUM = Decimal(1).scaleb(-COST_DIGITS["decimal_places"])

# A reply's status and finish reason (chat.models.Message) -> a record's outcome.
_OUTCOME_BY_STATUS = {
    "complete": UsageRecord.Outcome.COMPLETE,
    "incomplete": UsageRecord.Outcome.INCOMPLETE,
    "stopped": UsageRecord.Outcome.STOPPED,
    "error": UsageRecord.Outcome.ERROR,
}


def outcome_from_reply(status: str, finish_reason: str = "") -> str:
    """The ``UsageRecord.Outcome`` value for a reply that ended with ``status``
    ("complete", "incomplete", "stopped", "error") and ``finish_reason`` (the chat's
    vocabulary: "interrupted" means the server shut down mid-reply). Raises ValueError
    for any other status (a reply still streaming has no outcome yet)."""
    if finish_reason == "interrupted":
        return UsageRecord.Outcome.INTERRUPTED
    try:
        return _OUTCOME_BY_STATUS[status]
    except KeyError:
        raise ValueError(f"a reply with status {status!r} has no usage outcome") from None


def usage_record_write(
    *,
    user_id: int | None,
    provider: str,
    model: str,
    input_tokens: int | None,
    output_tokens: int | None,
    reasoning_tokens: int | None,
    ttft_ms: int | None,
    duration_ms: int | None,
    outcome: str,
    source: str = UsageRecord.Source.CHAT,
    api_key_id: int | None = None,
    reply_id: int | None = None,
) -> UsageRecord:
    """Write one reply's usage record, with its cost, and return it.

    Token counts are as the provider reported them (None: it did not say).
    ``output_tokens`` includes ``reasoning_tokens`` (as ``chat.providers.Usage`` says),
    so cost = input_tokens x input price + output_tokens x output price, per million
    tokens, in US dollars, rounded to 10 decimal places; reasoning tokens are not added
    again. The price (``price_for``, resolved for this request's input size) is copied
    onto the record: changing it later does not change this record. ``cost`` is None
    when no price is known or the provider reported no token counts.

    ``ttft_ms`` and ``duration_ms`` are milliseconds; ``outcome`` is a
    ``UsageRecord.Outcome`` value (see ``outcome_from_reply``), ``source`` "chat" or
    "api". Sync: call it in a database step, never while waiting on a provider. Raises
    ValueError for an unknown outcome or source, or a negative token count."""
    if outcome not in UsageRecord.Outcome.values:
        raise ValueError(f"unknown usage outcome {outcome!r}")
    if source not in UsageRecord.Source.values:
        raise ValueError(f"unknown usage source {source!r}")
    for count in (input_tokens, output_tokens, reasoning_tokens):
        if count is not None and count < 0:
            raise ValueError("token counts cannot be negative")

    price = price_for(provider, model)
    cost = input_price = output_price = None
    if price is not None:
        flat = price.for_request(input_tokens or 0)
        input_price, output_price = flat.input_per_mtok, flat.output_per_mtok
        if input_tokens is not None or output_tokens is not None:
            cost = flat.cost(input_tokens or 0, output_tokens or 0).quantize(
                COST_QUANTUM, rounding=ROUND_HALF_UP
            )
    return UsageRecord.objects.create(
        user_id=user_id,
        api_key_id=api_key_id,
        source=source,
        provider=provider,
        model=model,
        reply_id=reply_id,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        reasoning_tokens=reasoning_tokens,
        cost=cost,
        input_per_mtok=input_price,
        output_per_mtok=output_price,
        time_to_first_token_ms=ttft_ms,
        duration_ms=duration_ms,
        outcome=outcome,
    )


@dataclass
class PricesRefreshed:
    """What ``model_prices_refresh`` did: the rows it set to the package's price and
    those the package has no price for (left as they were)."""

    updated: list[ModelPrice] = field(default_factory=list)
    unknown: list[ModelPrice] = field(default_factory=list)


def model_prices_refresh(*, prices: Iterable[ModelPrice]) -> PricesRefreshed:
    """Set each of ``prices`` to the genai-prices package's current base price (source
    "genai-prices"), an administrator's price included: this is how an override is
    undone. Rows for models the package does not price stay as they are and are
    returned in ``unknown``."""
    result = PricesRefreshed()
    for row in prices:
        price = package_price(row.provider, row.model)
        if price is None:
            result.unknown.append(row)
            continue
        row.input_per_mtok = price.input_per_mtok
        row.output_per_mtok = price.output_per_mtok
        row.source = ModelPrice.Source.GENAI_PRICES
        row.save(update_fields=["input_per_mtok", "output_per_mtok", "source", "updated_at"])
        result.updated.append(row)
    price_cache_clear()
    return result
