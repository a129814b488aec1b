"""Usage pages' numbers and charts, drawn on the server as SVG: no script, no library,
nothing inline that the Content-Security-Policy would block (shapes are placed with SVG
attributes; colours come from static/usage/usage.css through classes).

A chart is an image to assistive technology (``role="img"`` with a title and a
one-sentence summary); the page puts a table with the same numbers beside it.

- ``{{ value|usd }}``: US dollars with sensible precision, "—" when unknown;
- ``{{ value|tokens }}``: a count with the locale's grouping, "—" when unknown;
- ``{% usage_day_charts days %}``: cost per day and tokens per day (input and output
  stacked), as bars;
- ``{% usage_share part whole %}``: a small bar and the percentage ``part`` is of ``whole``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import template
from django.utils import formats
from django.utils.dateformat import format as date_format
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language, ngettext, pgettext
from django.utils.translation import gettext as _

register = template.Library()

UNKNOWN = "—"
# Under a dollar: this many significant digits, never more than MAX_PLACES decimals.
SIGNIFICANT = 4
MAX_PLACES = 6
SMALLEST_USD = Decimal(1).scaleb(-MAX_PLACES)


@functools.lru_cache(maxsize=32)
def _marks(language: str | None) -> tuple[str, str, Any]:
    """The decimal mark, thousands separator and grouping of ``language`` (read once:
    a chart formats hundreds of numbers, and each of Django's lookups asks for the
    active language again)."""
    return (
        formats.get_format("DECIMAL_SEPARATOR", language, use_l10n=True),
        formats.get_format("THOUSAND_SEPARATOR", language, use_l10n=True),
        formats.get_format("NUMBER_GROUPING", language, use_l10n=True),
    )


def _number(value: Decimal | float | int, places: int) -> str:
    """``value`` rounded to ``places`` decimals, grouped, in the active language's marks."""
    decimal, thousands, grouping = _marks(get_language())
    if grouping != 3:  # groups other than thousands (none here yet): Django's own way
        return formats.number_format(value, places, use_l10n=True, force_grouping=True)
    text = f"{value:,.{places}f}"
    return text.replace(",", "\0").replace(".", decimal).replace("\0", thousands)


def format_usd(value: Decimal | float | int | None) -> str:
    """``value`` US dollars for a person to read: "$12.34" from one dollar up, else four
    significant digits ("$0.0421", "$0.000123"), "< $0.000001" below that, "$0.00" for
    nothing, "—" for None (unknown). Grouping and decimal mark follow the active language."""
    if value is None:
        return UNKNOWN
    amount = value if isinstance(value, Decimal) else Decimal(str(value))
    size = abs(amount)
    if size == 0:
        return "$" + _number(0, 2)
    if size < SMALLEST_USD:
        return "< $" + _number(SMALLEST_USD, MAX_PLACES)
    if size >= 1:
        places = 2
    else:
        # 0.0421 -> adjusted() == -2 -> 2 + 4 - 1 = 5 places; at least 2.
        places = min(MAX_PLACES, max(2, -size.adjusted() + SIGNIFICANT - 1))
    text = _number(size.quantize(Decimal(1).scaleb(-places)), places)
    if places > 2:  # "0.4200" -> "0.42": trailing zeros say nothing under a dollar
        whole, mark, decimals = text.rpartition(_marks(get_language())[0])
        text = f"{whole}{mark}{decimals.rstrip('0').ljust(2, '0')}"
    return f"{'-' if amount < 0 else ''}${text}"


def format_count(value: int | None) -> str:
    """A whole number with the active language's grouping ("1,234,567"); "—" for None."""
    if value is None:
        return UNKNOWN
    return _number(value, 0)


def format_compact(value: float) -> str:
    """A count for a chart's axis: 950, 12K, 1.5M (the table beside it has it exactly)."""
    for size, unit in ((1e9, _("%(number)sB")), (1e6, _("%(number)sM")), (1e3, _("%(number)sK"))):
        if value >= size:
            number = value / size
            places = 1 if number < 10 and number != int(number) else 0
            return unit % {"number": _number(number, places)}
    return _number(value, 0)


@register.filter
def usd(value: Decimal | None) -> str:
    """Template filter: ``format_usd``."""
    return format_usd(value)


@register.filter
def tokens(value: int | None) -> str:
    """Template filter: ``format_count``."""
    return format_count(value)


def _nice_ceiling(value: float) -> float:
    """The smallest round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 x 10^k) at or
    above ``value`` (> 0): the axis's top, its half a round number too."""
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if value <= step * power * (1 + 1e-9):
            return step * power
    return 10 * power


@dataclass(frozen=True)
class Series:
    """One stacked layer of a bar chart: ``name`` (said in each bar's tooltip), the CSS
    class that colours it, and one value per bar (None counts as 0)."""

    name: str
    css_class: str
    values: Sequence[float | None]


# The chart's drawing box, in SVG user units (it scales to the page's width).
WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 60, 8, 10, 24
X_LABELS = 6


def bar_chart_svg(
    *,
    chart_id: str,
    title: str,
    summary: str,
    labels: Sequence[str],
    series: Sequence[Series],
    value_text: Callable[[float], str],
    axis_text: Callable[[float], str],
) -> SafeString:
    """An SVG bar chart: one bar per label, the ``series`` stacked in each, a value axis
    from 0 to a round maximum, about X_LABELS labels under the bars. ``title`` and
    ``summary`` name and describe it for assistive technology; each bar's tooltip gives
    its label and values (``value_text``), the axis uses ``axis_text``. ``chart_id``
    must be unique on the page."""
    count = max(len(labels), 1)
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    stacks = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    top_value = _nice_ceiling(max(stacks)) if stacks and max(stacks) > 0 else 1.0
    slot = plot_width / count
    bar_width = max(slot * 0.8, 0.6)
    base = TOP + plot_height

    grid = []
    for fraction in (0, 0.5, 1):
        y = base - plot_height * fraction
        grid.append(
            format_html(
                '<line class="usage-chart-grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
                '<text class="usage-chart-axis" x="{}" y="{}" text-anchor="end">{}</text>',
                LEFT,
                WIDTH - RIGHT,
                f"{y:.1f}",
                f"{y:.1f}",
                LEFT - 6,
                f"{y + 4:.1f}",
                axis_text(top_value * fraction) if stacks and max(stacks) > 0 else "0",
            )
        )

    # Hundreds of bars: built with f-strings from escaped parts (format_html per bar
    # costs more than the rest of the page).
    names = [escape(s.name) for s in series]
    bars = []
    for i, label in enumerate(labels):
        values = [s.values[i] or 0 for s in series]
        if not any(v > 0 for v in values):
            continue
        if len(series) > 1:
            said = ", ".join(f"{value_text(v)} {n}" for v, n in zip(values, names, strict=True))
        else:
            said = value_text(values[0])
        tip = f"{escape(label)}: {said}"
        x = LEFT + slot * i + (slot - bar_width) / 2
        height_so_far = 0.0
        for s, value in zip(series, values, strict=True):
            if value <= 0:
                continue
            height = max(plot_height * value / top_value, 0.5)
            y = base - height_so_far - height
            height_so_far += height
            bars.append(
                f'<rect class="usage-chart-bar {s.css_class}" x="{x:.2f}" y="{y:.2f}" '
                f'width="{bar_width:.2f}" height="{height:.2f}"><title>{tip}</title></rect>'
            )

    step = max(1, math.ceil(count / X_LABELS))
    shown = list(range(0, len(labels), step))
    if labels and shown[-1] != len(labels) - 1 and len(labels) - 1 - shown[-1] >= step / 2:
        shown.append(len(labels) - 1)
    ticks = []
    for i in shown:
        # The first and last labels line up with the plot's edges rather than overflow it.
        if i == 0:
            x, anchor = LEFT + slot * i, "start"
        elif i == len(labels) - 1:
            x, anchor = LEFT + slot * (i + 1), "end"
        else:
            x, anchor = LEFT + slot * i + slot / 2, "middle"
        ticks.append(
            format_html(
                '<text class="usage-chart-axis" x="{}" y="{}" text-anchor="{}">{}</text>',
                f"{x:.1f}",
                HEIGHT - 6,
                anchor,
                labels[i],
            )
        )
    return format_html(
        '<svg class="usage-chart-svg" viewBox="0 0 {} {}" role="img" '
        'aria-labelledby="{}-title {}-desc" focusable="false">'
        '<title id="{}-title">{}</title><desc id="{}-desc">{}</desc>'
        '<g class="usage-chart-grid-lines">{}</g><g class="usage-chart-bars">{}</g>'
        '<g class="usage-chart-labels">{}</g></svg>',
        WIDTH,
        HEIGHT,
        chart_id,
        chart_id,
        chart_id,
        title,
        chart_id,
        summary,
        mark_safe("".join(grid)),  # noqa: S308 - built with format_html above
        mark_safe("".join(bars)),  # noqa: S308
        mark_safe("".join(ticks)),  # noqa: S308
    )


def _summary(
    days: int,
    total: str,
    values: Sequence[float],
    labels: Sequence[str],
    text: Callable[[float], str],
) -> str:
    peak = max(range(len(values)), key=lambda i: values[i], default=None)
    if peak is None or not values[peak]:
        return _("Nothing in this period.")
    return ngettext(
        "%(days)d day, total %(total)s; highest %(peak)s on %(day)s.",
        "%(days)d days, total %(total)s; highest %(peak)s on %(day)s.",
        days,
    ) % {
        "days": days,
        "total": total,
        "peak": text(values[peak]),
        "day": labels[peak],
    }


@register.simple_tag
def usage_day_charts(days: Sequence[Any]) -> SafeString:
    """Two figures for ``days`` (``DayUsage`` rows, oldest first): cost per day (US
    dollars; days with no known cost draw nothing) and tokens per day (input and output
    stacked, with a legend)."""
    pattern = pgettext("short day in charts (PHP date format)", "M j")
    labels = [date_format(d.day, pattern) for d in days]
    costs = [float(d.cost) if d.cost is not None else 0.0 for d in days]
    cost_chart = bar_chart_svg(
        chart_id="usage-cost-chart",
        title=_("Cost per day (USD)"),
        summary=_summary(
            len(days), format_usd(sum(d.cost or 0 for d in days)), costs, labels, format_usd
        ),
        labels=labels,
        series=[Series(_("cost"), "usage-bar-cost", costs)],
        value_text=format_usd,
        axis_text=format_usd,
    )

    def count_text(value: float) -> str:
        return format_count(round(value))

    inputs = [d.input_tokens or 0 for d in days]
    outputs = [d.output_tokens or 0 for d in days]
    both = [i + o for i, o in zip(inputs, outputs, strict=True)]
    tokens_chart = bar_chart_svg(
        chart_id="usage-tokens-chart",
        title=_("Tokens per day"),
        summary=_summary(len(days), format_count(sum(both)), both, labels, count_text),
        labels=labels,
        series=[
            Series(_("input tokens"), "usage-bar-input", inputs),
            Series(_("output tokens"), "usage-bar-output", outputs),
        ],
        value_text=count_text,
        axis_text=format_compact,
    )
    return format_html(
        '<figure class="usage-chart"><figcaption class="usage-chart-caption">{}</figcaption>'
        '<div class="usage-chart-scroll">{}</div></figure>'
        '<figure class="usage-chart"><figcaption class="usage-chart-caption">{}'
        '<span class="usage-legend" aria-hidden="true">'
        '<span class="usage-key usage-key-input"></span>{}'
        '<span class="usage-key usage-key-output"></span>{}</span></figcaption>'
        '<div class="usage-chart-scroll">{}</div></figure>',
        _("Cost per day (USD)"),
        cost_chart,
        _("Tokens per day"),
        _("input"),
        _("output"),
        tokens_chart,
    )


@register.simple_tag
def usage_share(part: Decimal | int | None, whole: Decimal | int | None) -> SafeString | str:
    """A small bar and the percentage ``part`` is of ``whole`` ("38 %", "< 1 %"); "—"
    when either is unknown or ``whole`` is 0. The bar is decoration (hidden from
    assistive technology): the percentage says it."""
    if part is None or not whole:
        return UNKNOWN
    percent = float(part) * 100 / float(whole)
    text = _("< 1%") if 0 < percent < 1 else _("%(percent)d%%") % {"percent": round(percent)}
    return format_html(
        '<span class="usage-share"><svg class="usage-share-svg" viewBox="0 0 100 8" '
        'preserveAspectRatio="none" aria-hidden="true" focusable="false">'
        '<rect class="usage-share-track" width="100" height="8"/>'
        '<rect class="usage-share-bar" width="{}" height="8"/></svg> {}</span>',
        f"{min(max(percent, 0), 100):.1f}",
        text,
    )
