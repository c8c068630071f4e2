from rest_framework.routers import DefaultRouter

from discovery.api import views

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("discovery/runs", views.DiscoveryRunViewSet, basename="discovery-run")
router.register("discovery/devices", views.DiscoveredDeviceViewSet, basename="discovery-device")
router.register("discovery/schedules", views.SavedRangeViewSet, basename="discovery-schedule")

urlpatterns = router.urls
