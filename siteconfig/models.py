"""Instance-wide choices an admin edits in the admin, over the environment's defaults."""

from __future__ import annotations

from django.core.cache import cache
from django.db import models
from django.utils.translation import gettext_lazy as _

_CACHE_KEY = "siteconfig:current"


class SiteConfiguration(models.Model):
    """The one row of instance-wide choices (pk 1). Empty fields fall back to the
    environment (``CHAT_DEFAULT_PROVIDER``, ``CHAT_DEFAULT_MODEL``)."""

    default_provider = models.CharField(
        _("default provider"),
        max_length=64,
        blank=True,
        help_text=_("Provider of a new chat for people who have not chosen one yet."),
    )
    default_model = models.CharField(
        _("default model"),
        max_length=200,
        blank=True,
        help_text=_("Model id at that provider; empty: the provider's first model."),
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("site configuration")
        verbose_name_plural = _("site configuration")
        constraints = [models.CheckConstraint(condition=models.Q(pk=1), name="siteconfig_single")]

    def __str__(self) -> str:
        return str(_("Site configuration"))

    def save(self, *args: object, **kwargs: object) -> None:
        self.pk = 1
        super().save(*args, **kwargs)  # type: ignore[arg-type]
        cache.delete(_CACHE_KEY)

    @classmethod
    def current(cls) -> SiteConfiguration:
        """The configuration (an unsaved empty one when the admin never saved it),
        cached for a minute so a page costs no query."""
        config = cache.get(_CACHE_KEY)
        if config is None:
            config = cls.objects.filter(pk=1).first() or cls(pk=1)
            cache.set(_CACHE_KEY, config, 60)
        return config
