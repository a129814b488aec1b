from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView

urlpatterns = [
    # Browsers and tools ask for /favicon.ico: the app's icon (302: its hashed name changes).
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("chat/icons/icon-192.png"))),
    path("", include("usage.urls")),  # /usage/, /admin/usage/dashboard/: before the admin
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("", include("api.urls")),
    path("", include("sharing.urls")),  # share links: /s/<token>/, /shared/
    path("", include("transfer.urls")),  # /transfer/: export and import
    path("", include("chat.urls")),
]
