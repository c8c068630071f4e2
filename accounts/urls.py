from django.urls import path

from accounts import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("switch/", views.switch_scope, name="switch-scope"),
]
