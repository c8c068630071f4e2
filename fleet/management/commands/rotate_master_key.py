from typing import Any

from django.core.management.base import BaseCommand

from fleet.services.keys import master_key_rotate


class Command(BaseCommand):
    help = (
        "Re-wrap every data key (and re-seal MFA secrets) under the current FLEET_MASTER_KEY. "
        "Run every process with the new FLEET_MASTER_KEY and the old one in "
        "FLEET_MASTER_KEY_PREVIOUS first; remove FLEET_MASTER_KEY_PREVIOUS afterwards."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        done = master_key_rotate()
        self.stdout.write(
            f"Re-wrapped {done['data_keys']} data keys and re-sealed "
            f"{done['mfa_authenticators']} MFA authenticators under the current master key."
        )
