"""Share links (see sharing/views.py): the owner's pages under /shared/, the shared page
under /s/<token>/. Included at the site's root (chat_ai/urls.py)."""

from django.urls import path

from . import views

app_name = "sharing"

urlpatterns = [
    path("shared/", views.links, name="mine"),
    path("shared/new/<int:pk>/", views.link_create, name="create"),
    path("shared/<int:pk>/revoke/", views.link_revoke, name="revoke"),
    path("s/<str:token>/", views.shared_page, name="view"),
    path("s/<str:token>/files/<int:pk>/", views.shared_image, name="image"),
    path("s/<str:token>/continue/", views.shared_continue, name="continue"),
]
