# Placeholder: the samples-partitioning migration replaces this file.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("fleet", "0006_fleet_settings_and_list_index")]
    operations: list[migrations.operations.base.Operation] = []
