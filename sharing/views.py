"""Share links over HTTP.

- ``POST /shared/new/<conversation id>/`` (field ``audience``): make a link (the chat
  page's Share dialog asks with fetch and gets JSON; a plain form is redirected to the
  list).
- ``GET /shared/``: the person's links; ``POST /shared/<id>/revoke/`` revokes one.
- ``GET /s/<token>/``: the shared page, read-only; ``GET /s/<token>/files/<id>/`` an image
  of it (``?size=thumb``: its thumbnail); ``POST /s/<token>/continue/``: a copy in the
  signed-in viewer's chats.

A revoked or unknown token answers 404, like a page that does not exist. A link for
signed-in users sends anyone else to sign in. The shared page says "noindex" twice (the
``X-Robots-Tag`` header and a meta tag) and is never cached, so a revoked link's page
does not linger; it has the site's Content-Security-Policy (chat.middleware) and shows
only the snapshot's stored, sanitized HTML.
"""

from __future__ import annotations

from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from . import selectors, services
from .models import SharedImage, SharedLink
from .snapshot import messages_for_page

ROBOTS = "noindex, nofollow, noarchive"
THUMB_SIZE = "thumb"


def _wants_json(request: HttpRequest) -> bool:
    """The page's script asks with fetch() and wants JSON."""
    return request.headers.get("X-Requested-With") == "fetch"


def _link_url(request: HttpRequest, link: SharedLink) -> str:
    return request.build_absolute_uri(reverse("sharing:view", args=[link.token]))


@require_POST
@login_required
def link_create(request: HttpRequest, pk: int) -> HttpResponse:
    """Share conversation ``pk`` (the person's; 404 otherwise) with ``audience``.
    fetch: 201 ``{"id", "url", "audience"}`` or 400 ``{"error"}``; a plain form: back
    to the list with a notice."""
    audience = request.POST.get("audience", "")
    try:
        link = services.shared_link_create(
            owner=request.user, conversation_id=pk, audience=audience
        )
    except Http404:
        if _wants_json(request):
            return JsonResponse(
                {"error": _("That conversation is not in your chats: it may have been deleted.")},
                status=404,
            )
        raise
    except ValidationError as e:
        message = " ".join(e.messages)
        if _wants_json(request):
            return JsonResponse({"error": message}, status=400)
        flash.error(request, message)
        return redirect("chat:conversation", pk=pk)
    if _wants_json(request):
        return JsonResponse(
            {"id": link.pk, "url": _link_url(request, link), "audience": link.audience},
            status=201,
        )
    flash.success(request, _("Link created: copy it from the list."))
    return redirect("sharing:mine")


@require_safe
@login_required
def links(request: HttpRequest) -> HttpResponse:
    """The person's links, newest first: each with its address (to copy again), who can
    open it, views, and Revoke."""
    rows = [
        (link, _link_url(request, link)) for link in selectors.shared_links_of(owner=request.user)
    ]
    response = render(
        request,
        "sharing/links.html",
        {
            "links": rows,
            "public_allowed": services.public_links_allowed(),
            "audiences": SharedLink.Audience,
        },
    )
    add_never_cache_headers(response)
    return response


@require_POST
@login_required
def link_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke one of the person's links (404 for anyone else's); back to the list."""
    try:
        link = services.shared_link_revoke(owner=request.user, link_id=pk)
    except SharedLink.DoesNotExist:
        raise Http404("No such link") from None
    flash.success(
        request,
        _("The link to “%(title)s” was revoked: it no longer opens.")
        % {"title": link.title or _("New chat")},
    )
    return redirect("sharing:mine")


def _link_for(request: HttpRequest, token: str) -> SharedLink | HttpResponse:
    """The link ``token`` opens for this visitor; a sign-in redirect when it is for
    signed-in users and they are not; Http404 when revoked or unknown."""
    link = selectors.shared_link_for_token(token=token)
    if link is None:
        raise Http404("No such link")
    if (
        link.effective_audience == SharedLink.Audience.SIGNED_IN
        and not request.user.is_authenticated
    ):
        return redirect_to_login(reverse("sharing:view", args=[token]))
    return link


def _private(response: HttpResponseBase) -> HttpResponseBase:
    response["X-Robots-Tag"] = ROBOTS
    add_never_cache_headers(response)
    return response


@require_safe
def shared_page(request: HttpRequest, token: str) -> HttpResponseBase:
    """The shared conversation, read-only, with nothing else of its owner."""
    link = _link_for(request, token)
    if isinstance(link, HttpResponse):
        return _private(link)
    if request.method == "GET":
        services.shared_link_viewed(link=link, viewer=request.user)
    response = render(
        request,
        "sharing/shared.html",
        {
            "link": link,
            "thread": messages_for_page(link.snapshot),
            "robots": ROBOTS,
        },
    )
    return _private(response)


@require_safe
def shared_image(request: HttpRequest, token: str, pk: int) -> HttpResponseBase:
    """An image of the shared page (``?size=thumb``: its thumbnail), for whoever may
    open the link; 404 for an image of another link."""
    link = _link_for(request, token)
    if isinstance(link, HttpResponse):
        return _private(link)
    image = SharedImage.objects.filter(pk=pk, link=link).first()
    if image is None:
        raise Http404("No such file")
    thumb = request.GET.get("size") == THUMB_SIZE
    stored = image.thumb if thumb else image.file
    try:
        # Small (at most 3.75 MB, a thumbnail far less): read whole, no stream to drive.
        with stored.open("rb") as handle:
            data = handle.read()
    except OSError:
        raise Http404("No such file") from None
    response = HttpResponse(data, content_type="image/webp" if thumb else image.content_type)
    disposition = content_disposition_header(False, image.name)
    if disposition:
        response["Content-Disposition"] = disposition
    # Data, never a page: no script, no sniffing, this site only.
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    return _private(response)


@require_POST
def shared_continue(request: HttpRequest, token: str) -> HttpResponseBase:
    """A copy of the shared conversation in the signed-in viewer's chats; they go on
    there. Someone not signed in is sent to sign in, then back to the shared page."""
    if not request.user.is_authenticated:
        return redirect_to_login(reverse("sharing:view", args=[token]))
    link = _link_for(request, token)
    if isinstance(link, HttpResponse):
        return link
    conversation, images_left_out = services.shared_link_continue(link=link, viewer=request.user)
    if images_left_out:
        flash.warning(
            request,
            _("The images were left out: they would take you past your storage quota."),
        )
    flash.success(request, _("This is your own copy: go on with it."))
    return redirect("chat:conversation", pk=conversation.pk)
