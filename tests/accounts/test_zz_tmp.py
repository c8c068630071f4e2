from django.db import connection
from django.test.utils import CaptureQueriesContext
from accounts.models import User
from tests.accounts import test_role_matrix as m
from tests.conftest import api_client_for
def test_counts(org_a, org_b):
    out = []
    for cls in m.RouteMatrix.__subclasses__():
        spec = cls()
        lists = [r for r in m.api_routes() if r.viewset is spec.viewset and r.action == "list"]
        for i in range(3):
            spec.make_object(org_a, 10 + i) if spec.make_object(org_a, 20 + i) is not None or True else None
        c = api_client_for(User.objects.get(pk=org_a.users["owner"].pk))
        with CaptureQueriesContext(connection) as ctx:
            c.get(lists[0].url(None))
        out.append((cls.__name__, len(ctx), [q["sql"][:90] for q in ctx.captured_queries]))
    for o in out: print(o[0], o[1])
    assert 0
