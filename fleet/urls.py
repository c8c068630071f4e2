from django.urls import path

from fleet.views import actions, dashboard, jobs, miner_view, miners, nodes
from fleet.views import settings as fleet_settings

urlpatterns = [
    path("fleet/", dashboard.fleet_dashboard, name="fleet-dashboard"),
    path("fleet/settings/", fleet_settings.fleet_settings, name="fleet-settings"),
    path("fleet/settings/save/", fleet_settings.fleet_settings_save, name="fleet-settings-save"),
    path("miners/", miners.miner_list, name="miners"),
    path("miners/add/", miners.miner_add, name="miner-add"),
    path("miners/actions/", actions.bulk_action, name="miners-bulk-action"),
    path("miners/<int:pk>/", miners.miner_detail, name="miner-page"),
    path("miners/<int:pk>/view/", miner_view.miner_view, name="miner-view"),
    path("miners/<int:pk>/edit/", miners.miner_edit, name="miner-edit"),
    path("miners/<int:pk>/move/", miners.miner_move, name="miner-move"),
    path("miners/<int:pk>/credentials/", miners.miner_credentials, name="miner-credentials"),
    path("miners/<int:pk>/delete/", miners.miner_delete, name="miner-delete"),
    *(
        path(f"miners/<int:pk>/actions/{kind}/", view, name=f"miner-run-{kind}")
        for kind, view in actions.MINER_ACTIONS.items()
    ),
    path("jobs/", jobs.job_list, name="jobs"),
    path("jobs/<int:pk>/", jobs.job_detail, name="job-page"),
    path("jobs/<int:pk>/cancel/", jobs.job_cancel, name="job-page-cancel"),
    path("nodes/", nodes.node_list, name="nodes"),
    path("nodes/add/", nodes.node_add, name="node-add"),
    path("nodes/codes/<int:pk>/cancel/", nodes.enrollment_code_cancel, name="node-code-cancel"),
    path("nodes/<int:pk>/", nodes.node_detail, name="node-page"),
    path("nodes/<int:pk>/confirm/", nodes.node_confirm, name="node-confirm"),
    path("nodes/<int:pk>/revoke/", nodes.node_revoke, name="node-revoke"),
]
