"""Sign-in, sign-out and sign-up, under /accounts/. The route names (login, logout,
signup) have no namespace: LOGIN_URL and the templates use them as they are."""

from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

urlpatterns = [
    path("login/", views.SignInView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", views.signup, name="signup"),
]
