from pathlib import Path

from accounts.permissions import BUILTIN_ROLES, CATALOG

DOC = (Path(__file__).resolve().parent.parent / "docs" / "permissions.md").read_text()


def test_permissions_doc_matches_the_catalog() -> None:
    rows = {
        line.split("|")[1].strip().strip("`"): line
        for line in DOC.splitlines()
        if line.startswith("| `")
    }
    assert set(rows) == set(CATALOG)
    roles = list(BUILTIN_ROLES)
    for perm, line in rows.items():
        marks = [cell.strip() for cell in line.split("|")[3:-1]]
        assert marks == ["✓" if perm in BUILTIN_ROLES[r][1] else "" for r in roles], perm
