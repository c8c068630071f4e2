from django.urls import path
from rest_framework.routers import DefaultRouter

from fleet.api import gateway, nodes, views
from fleet.api.settings import settings_view

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("miners", views.MinerViewSet, basename="miner")
router.register("fleet/summary", views.FleetSummaryViewSet, basename="fleet-summary")

# fleet nodes and jobs: the contract's paths have no trailing slash
# (``/fleet-nodes/{id}/confirm``, ``/node-gateway/register``, ``/jobs/{id}/cancel``);
# both spellings are served
node_router = DefaultRouter()
node_router.trailing_slash = "/?"  # the constructor only takes a bool
node_router.include_root_view = False
node_router.register("fleet-nodes", nodes.FleetNodeViewSet, basename="fleet-node")
node_router.register("node-gateway", gateway.NodeGatewayViewSet, basename="node-gateway")
node_router.register("jobs", views.JobViewSet, basename="job")

# one object per org, no id in the path (fleet/api/settings.py)
urlpatterns = [
    path("fleet/settings/", settings_view, name="fleet-settings-api"),
    *router.urls,
    *node_router.urls,
]
