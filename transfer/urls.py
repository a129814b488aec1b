"""The transfer pages, under /transfer/ (included at the site's root by chat_ai/urls.py)."""

from django.urls import path

from . import views

app_name = "transfer"

urlpatterns = [
    path("transfer/", views.transfer_page, name="index"),
    path("transfer/export/", views.export_all, name="export_all"),
    path("transfer/c/<int:pk>/export/", views.conversation_export, name="export_conversation"),
    path("transfer/import/", views.import_file, name="import"),
    path("transfer/import/<int:pk>/", views.import_result, name="import_result"),
]
