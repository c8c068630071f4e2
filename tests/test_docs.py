import re
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


ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
INTERNAL_VARIABLES = {"FLEET_TESTING"}  # set by the test runner, not by operators


def _variables_read_by_settings() -> set[str]:
    text = (ROOT / "config" / "settings.py").read_text()
    return set(re.findall(r"\benv_(?:str|bool|int|list|url|networks)\(\s*\"([A-Z0-9_]+)\"", text))


def test_readme_configuration_table_lists_every_variable_the_settings_read() -> None:
    table = [line for line in README.splitlines() if line.startswith("| `")]
    documented = {name for line in table for name in re.findall(r"`([A-Z][A-Z0-9_]*\*?)`", line)}
    wildcards = tuple(name[:-1] for name in documented if name.endswith("*"))
    read = _variables_read_by_settings()
    assert len(read) > 20, read  # the pattern still finds them
    missing = sorted(
        name
        for name in read - INTERNAL_VARIABLES
        if name not in documented and not name.startswith(wildcards)
    )
    assert not missing, f"README's configuration table lacks {missing}"


def test_readme_and_docs_link_only_to_files_that_exist() -> None:
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#]+)\)|`(docs/[^`]+\.md)`", doc.read_text()):
            link = next(t for t in target if t)
            if link.startswith(("http://", "https://", "mailto:")):
                continue
            assert (doc.parent / link).exists() or (ROOT / link).exists(), (doc.name, link)
