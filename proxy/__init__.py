"""The authenticated reverse proxy to miners' own web APIs (``/api-proxy/miners/<id>/...``)."""
