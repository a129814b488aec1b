from django.urls import path

from . import views

app_name = "chat"

urlpatterns = [
    path("", views.index, name="index"),
    path("health/", views.health, name="health"),
    path("c/new/", views.conversation_new, name="conversation_new"),
    path("c/new/reply/", views.reply_new, name="reply_new"),
    path("c/status/", views.conversation_statuses, name="status"),
    path("c/<int:pk>/", views.conversation_detail, name="conversation"),
    path("c/<int:pk>/messages/", views.conversation_messages, name="messages"),
    path("c/<int:pk>/reply/", views.reply, name="reply"),
    path("c/<int:pk>/rename/", views.conversation_rename, name="rename"),
    path("c/<int:pk>/delete/", views.conversation_delete, name="delete"),
    path("c/<int:pk>/settings/", views.conversation_settings, name="settings"),
    path("c/<int:pk>/seen/", views.conversation_seen, name="seen"),
    path("m/<int:pk>/", views.message_detail, name="message"),
    path("m/<int:pk>/stop/", views.message_stop, name="stop"),
    path("m/<int:pk>/events/", views.reply_events, name="events"),
    path("m/<int:pk>/show/", views.message_show, name="show"),
    path("m/<int:pk>/delete/", views.message_delete, name="message_delete"),
    path("m/<int:pk>/fork/", views.message_fork, name="fork"),
]

# Attachments (chat/attachment_views.py): upload, fetch (owner and staff), remove unsent.
from . import attachment_views  # noqa: E402

urlpatterns += [
    path("attachments/", attachment_views.attachment_upload, name="attachments"),
    path("attachments/<int:pk>/", attachment_views.attachment_detail, name="attachment"),
    path(
        "attachments/<int:pk>/delete/",
        attachment_views.attachment_delete,
        name="attachment_delete",
    ),
]

# Temporary chats (chat/temporary_views.py): never written to the database.
from django.urls import re_path  # noqa: E402

from . import temporary_views  # noqa: E402

urlpatterns += [
    path("t/reply/", temporary_views.temporary_reply, name="temporary_reply"),
    re_path(
        r"^t/(?P<run>-?\d{1,18})/stop/$",
        temporary_views.temporary_reply_stop,
        name="temporary_stop",
    ),
]

# Folders, pins and the archive (chat/folder_views.py).
from . import folder_views  # noqa: E402

urlpatterns += [
    path("folders/new/", folder_views.folder_create, name="folder_create"),
    path("folders/<int:pk>/", folder_views.folder_update, name="folder_update"),
    path("folders/<int:pk>/delete/", folder_views.folder_delete, name="folder_delete"),
    path("c/<int:pk>/move/", folder_views.conversation_move, name="move"),
    path("c/<int:pk>/pin/", folder_views.conversation_pin, name="pin"),
    path("c/<int:pk>/unpin/", folder_views.conversation_unpin, name="unpin"),
    path("c/<int:pk>/archive/", folder_views.conversation_archive, name="archive"),
    path("c/<int:pk>/unarchive/", folder_views.conversation_unarchive, name="unarchive"),
]

# The installable web app (chat/pwa_views.py): at the root, so the worker's scope is the site.
from . import pwa_views  # noqa: E402

urlpatterns += [
    path("manifest.webmanifest", pwa_views.web_manifest, name="manifest"),
    path("sw.js", pwa_views.service_worker, name="service_worker"),
    path("offline/", pwa_views.offline, name="offline"),
]
