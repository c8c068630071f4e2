from django.urls import path

from terminals import views as pages

urlpatterns = [
    path("terminals/", pages.workspace, name="terminals"),
    path("terminals/login-state/", pages.login_state, name="terminal-login-state"),
    path("terminals/hosts/", pages.host_list, name="ssh-hosts"),
    path("terminals/hosts/add/", pages.host_add, name="ssh-host-add"),
    path("terminals/hosts/<int:pk>/", pages.host_detail, name="ssh-host-page"),
    path("terminals/hosts/<int:pk>/retrust/", pages.host_retrust, name="ssh-host-retrust"),
    path("terminals/hosts/<int:pk>/delete/", pages.host_delete, name="ssh-host-delete"),
    path("terminals/commands/", pages.commands, name="terminal-commands"),
    path("terminals/recordings/", pages.recording_list, name="terminal-recordings"),
    path("terminals/recordings/<int:pk>/", pages.recording_player, name="terminal-recording"),
    path("terminals/policy/", pages.policy_save, name="terminal-policy"),
]
