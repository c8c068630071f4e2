"""Fleet nodes: enrollment, sessions, the control stream, signed commands, node-owned miners.

Services live in the modules here (``enrollment``, ``sessions``, ``commands``, ``ownership``,
``stream``); the API (``fleet.api.nodes``, ``fleet.api.gateway``), the pages
(``fleet.views.nodes``) and the consumer (``consumer``) stay thin over them.
"""
