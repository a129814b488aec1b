"""Sign-in, sign-out and sign-up, the language switcher and the API keys page, under
/accounts/. The route names (login, logout, signup, set_language, api_keys,
api_key_revoke) have no namespace: LOGIN_URL and the templates use them as they are."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import key_views, views

urlpatterns = [
    path("login/", views.SignInView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", views.signup, name="signup"),
    path("language/", views.set_language, name="set_language"),
    path("keys/", key_views.keys, name="api_keys"),
    path("keys/<int:pk>/revoke/", key_views.key_revoke, name="api_key_revoke"),
    path("oidc/", include("accounts.oidc_urls")),  # single sign-on (404 while off)
]
