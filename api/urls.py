from django.urls import path

from . import views

app_name = "api"

urlpatterns = [
    path("v1/models", views.models_list, name="models"),
    path("v1/chat/completions", views.chat_completions, name="chat_completions"),
]
