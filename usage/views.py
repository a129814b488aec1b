"""The usage pages: a person's own usage (/usage/) and the admin dashboard
(/admin/usage/dashboard/, staff with permission to view usage records). The numbers come
from ``usage.selectors``; the charts are drawn by ``usage_charts`` template tags."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_safe

from . import selectors


def _period_context(request: HttpRequest) -> dict[str, Any]:
    """The period the query string names (``?period=``), and the choices offered: the
    last 7 / 30 / 90 / 365 days and the last 12 months (plus the month chosen, when it
    is older)."""
    today = timezone.localdate()
    period = selectors.usage_period(request.GET.get("period"), today=today)
    days = [
        (f"{n}d", ngettext("Last %(days)d day", "Last %(days)d days", n) % {"days": n})
        for n in selectors.PERIOD_DAYS
    ]
    months = selectors.recent_months(today=today)
    if period.is_month and period.key not in months:
        months.append(period.key)
    month_choices = [
        (
            key,
            formats.date_format(
                selectors.usage_period(key, today=today).first_day, "YEAR_MONTH_FORMAT"
            ),
        )
        for key in months
    ]
    return {"period": period, "day_choices": days, "month_choices": month_choices}


@login_required
@require_safe
def usage_page(request: HttpRequest) -> HttpResponse:
    """The signed-in person's tokens and cost over a period: per day, by provider and by
    model. Only their own records."""
    context = _period_context(request)
    report = selectors.usage_report_for_user(user=request.user, period=context["period"])
    return render(request, "usage/usage.html", {**context, "report": report})


@require_safe
def dashboard(request: HttpRequest) -> HttpResponse:
    """Everyone's usage over a period: totals, cost and tokens per day, the top people
    and models, each linked to its records in the admin. Wrapped in
    ``admin.site.admin_view`` (urls.py): someone not signed in as staff is sent to the
    admin's sign-in (302); staff without the "view usage record" permission get 403."""
    if not request.user.has_perm("usage.view_usagerecord"):
        raise PermissionDenied
    context = _period_context(request)
    period = context["period"]
    board = selectors.usage_dashboard(period=period)
    records_url = reverse("admin:usage_usagerecord_changelist")
    in_period = urlencode(
        {"created_at__gte": period.start.isoformat(), "created_at__lt": period.end.isoformat()}
    )
    people = [
        (
            person,
            f"{records_url}?"
            + (
                f"user__id__exact={person.user_id}"
                if person.user_id is not None
                else "user__isnull=True"
            )
            + f"&{in_period}",
        )
        for person in board.people
    ]
    models = [
        (row, f"{records_url}?{urlencode({'model': f'{row.provider}/{row.model}'})}&{in_period}")
        for row in board.models
    ]
    return render(
        request,
        "usage/dashboard.html",
        {
            **admin.site.each_context(request),
            **context,
            "title": _("Usage dashboard"),
            "board": board,
            "people": people,
            "models": models,
            "records_url": f"{records_url}?{in_period}",
        },
    )
