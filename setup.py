"""Package layout of terapix-fw (the metadata is in pyproject.toml).

The XML schemas and the web templates are edited at the top of the source tree (``schemas/``,
``web/``); the wheel carries them inside the package, as ``terapix_fw/schemas`` and
``terapix_fw/web/assets``, so that an installed framework needs no source tree
(:mod:`terapix_fw.resources` finds them in either place).
"""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["terapix_fw*"]) + ["terapix_fw.schemas", "terapix_fw.web.assets"],
    package_dir={"terapix_fw.schemas": "schemas", "terapix_fw.web.assets": "web"},
    package_data={
        "terapix_fw.schemas": ["*.xsd"],
        "terapix_fw.web.assets": ["templates/*.html", "templates/**/*.html", "static/*", "static/**/*"],
        "terapix_fw": ["py.typed"],
        "terapix_fw.spica": ["data/*"],  # the release configuration files Spica writes into every job
        "terapix_fw.db.migrations": ["script.py.mako", "alembic.ini"],
    },
    include_package_data=False,
)
