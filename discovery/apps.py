from __future__ import annotations

from django.apps import AppConfig


class DiscoveryConfig(AppConfig):
    name = "discovery"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # fleet carries the control stream but builds on nothing above it: discovery hands it
        # the handler for the node's ``discovery_batch`` frames
        from discovery.node import batch_handle
        from discovery.pairing import JOB_KIND
        from fleet.nodes.consumer import handler_register
        from fleet.services.jobs import job_kind_register

        handler_register("discovery_batch", batch_handle)
        # a pairing job stops between devices when cancelled (fleet's generic job cancel)
        job_kind_register(JOB_KIND, "miner:pair")
