"""The usage pages. Included at the site's root (chat_ai/urls.py) before the admin, whose
catch-all would otherwise answer /admin/usage/dashboard/ with a 404."""

from django.contrib import admin
from django.urls import path

from . import views

app_name = "usage"

urlpatterns = [
    path("usage/", views.usage_page, name="mine"),
    path("admin/usage/dashboard/", admin.site.admin_view(views.dashboard), name="dashboard"),
]
