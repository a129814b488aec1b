from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("usage.urls")),  # /usage/, /admin/usage/dashboard/: before the admin
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("", include("api.urls")),
    path("", include("sharing.urls")),  # share links: /s/<token>/, /shared/
    path("", include("transfer.urls")),  # /transfer/: export and import
    path("", include("chat.urls")),
]
