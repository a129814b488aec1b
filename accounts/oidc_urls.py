"""Single sign-on routes, under /accounts/oidc/: ``oidc_authentication_init`` starts a
sign-in at the provider, ``oidc_authentication_callback`` is where the provider sends the
person back (the redirect URI to register at the provider:
``https://<this site>/accounts/oidc/callback/``). Both answer 404 while single sign-on is
off. The names are the ones mozilla-django-oidc reverses."""

from django.urls import path

from . import oidc

urlpatterns = [
    path("login/", oidc.OidcSignInView.as_view(), name="oidc_authentication_init"),
    path("callback/", oidc.OidcCallbackView.as_view(), name="oidc_authentication_callback"),
]
