"""Package layout: ``core/`` installs as ``agentracer``, ``trainer/`` as ``agentracer.trainer``.

Everything else is in pyproject.toml; this file only maps folders to import names, finding sub-packages
so a new module folder never needs listing by hand.
"""

from setuptools import find_packages, setup

ROOTS = {"agentracer": "core", "agentracer.trainer": "trainer", "agentracer_plugins": "agentracer_plugins"}

packages: list[str] = []
package_dir: dict[str, str] = {}
for name, folder in ROOTS.items():
    packages.append(name)
    package_dir[name] = folder
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=package_dir)
