"""``{% load tidings %}{% tidings_bell %}``: the notification bell for ``request.user``."""

from __future__ import annotations

from typing import Any

from django import template
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from tidings.django import mint_token

register = template.Library()


@register.simple_tag(takes_context=True)
def tidings_bell(context: template.Context, **attributes: Any) -> SafeString:
    """Renders ``<tidings-bell url=… token=…>`` with a token minted for ``request.user``
    (nothing for an anonymous visitor). Keyword arguments become attributes, ``_`` as ``-``:
    ``{% tidings_bell history_url="/notifications/" %}`` → ``history-url="/notifications/"``.
    The page loads the element's script itself (client-js/README.md)."""
    request = context.get("request")
    if request is None:
        raise ImproperlyConfigured(
            "{% tidings_bell %} needs the request in the context: "
            "add django.template.context_processors.request to the template settings"
        )
    user = request.user
    if not user.is_authenticated:
        return SafeString("")
    token = mint_token(user, locale=getattr(request, "LANGUAGE_CODE", None))["token"]
    url = getattr(settings, "TIDINGS_PUBLIC_URL", None) or settings.TIDINGS_URL
    extra = format_html_join("", ' {}="{}"', ((k.replace("_", "-"), v) for k, v in attributes.items()))
    return format_html('<tidings-bell url="{}" token="{}"{}></tidings-bell>', url, token, extra)
