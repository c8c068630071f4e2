import re
from django.test import Client
from tests.conftest import PASSWORD

def test_explore(org_a):
    c = Client(enforce_csrf_checks=True, REMOTE_ADDR="10.9.9.9", HTTP_USER_AGENT="pytest-agent")
    r = c.get("/accounts/login/")
    print(r.status_code, r.headers)
    pass
    token = c.cookies["csrftoken"].value
    r = c.post("/accounts/login/", {"login": "viewer@alpha.example", "password": "wrong", "csrfmiddlewaretoken": token})
    print(r.status_code, re.findall(r"<ul class=\"errorlist[^>]*>.*?</ul>", r.content.decode(), re.S))
    r = c.post("/accounts/login/", {"login": "viewer@alpha.example", "password": PASSWORD, "csrfmiddlewaretoken": token})
    print(r.status_code, r.headers.get("Location"))
    r = c.get("/")
    print(r.status_code)
    from accounts.models import LoginEvent
    print(list(LoginEvent.objects.values()))
    assert 0
