"""MetaGPT tests: MetaGPT reads ~/.metagpt/config2.yaml at import, so point it at a private home first."""

import atexit
import shutil
import tempfile

from agentracer_plugins.metagpt.offline import prepare_home

_HOME = tempfile.mkdtemp(prefix="agentracer-metagpt-home-")
atexit.register(shutil.rmtree, _HOME, True)
prepare_home(_HOME)  # before any test module imports metagpt
