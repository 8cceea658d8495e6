"""Which packages the distribution carries (everything else is in pyproject.toml).

The migrations and the shipped workflow definitions stay at the repository's top level
(``migrations/``, ``workflows/``, where Alembic and the docs expect them) and are built
into the package as ``yinfin_flow/migrations`` and ``yinfin_flow/workflows``, so an
installed wheel has them beside its code (see ``yinfin_flow.config.shipped``).
"""

from setuptools import find_packages, setup

MAPPED = {
    "yinfin_flow.migrations": "migrations",
    "yinfin_flow.migrations.versions": "migrations/versions",
    "yinfin_flow.workflows": "workflows",
    "yinfin_flow.workflows.postings": "workflows/postings",
}

setup(
    packages=find_packages(include=["yinfin_flow", "yinfin_flow.*", "connectors", "connectors.*"])
    + list(MAPPED),
    package_dir=MAPPED,
)
