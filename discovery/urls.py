from django.urls import path

from discovery import views

urlpatterns = [
    path("discovery/", views.discovery_page, name="discovery"),
    path("discovery/start/", views.discovery_start, name="discovery-start"),
    path("discovery/pair/", views.discovery_pair, name="discovery-pair"),
    path("discovery/schedules/", views.discovery_schedule, name="discovery-schedule"),
    path(
        "discovery/schedules/<int:pk>/delete/",
        views.discovery_unschedule,
        name="discovery-unschedule",
    ),
]
