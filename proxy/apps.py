from django.apps import AppConfig


class ProxyConfig(AppConfig):
    """``/api-proxy/``: a miner's own API through the server, within the caller's permissions."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "proxy"
