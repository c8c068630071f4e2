from rest_framework.routers import DefaultRouter

from fleet.api import views

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("miners", views.MinerViewSet, basename="miner")
router.register("jobs", views.JobViewSet, basename="job")
router.register("fleet/summary", views.FleetSummaryViewSet, basename="fleet-summary")

urlpatterns = router.urls
