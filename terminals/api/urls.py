from rest_framework.routers import DefaultRouter

from terminals.api import remote, views

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("terminals/hosts", views.SshHostViewSet, basename="ssh-host")
router.register("terminals/sessions", views.TerminalSessionViewSet, basename="terminal-session")
router.register("terminals/recordings", views.RecordingViewSet, basename="terminal-recording")
router.register("terminals/commands", remote.RemoteCommandViewSet, basename="terminal-command")

urlpatterns = [*router.urls]
