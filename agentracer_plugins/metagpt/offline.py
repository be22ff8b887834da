"""Point MetaGPT at a private home with an offline ``config2.yaml`` before it is first imported.

MetaGPT 0.8 reads ``~/.metagpt/config2.yaml`` when ``metagpt.config2`` is imported and writes its
workspace under ``METAGPT_PROJECT_ROOT``; both are fixed at import time. ``prepare_home`` sets them up in
a folder of your choice (tests use a temporary one) and refuses once MetaGPT is already imported.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from agentracer import InputError


def prepare_home(root: str | os.PathLike[str], *, base_url: str = "http://127.0.0.1:9/v1",
                 model: str = "scripted", api_key: str = "sk-offline", stream: bool = False) -> Path:
    """Write ``root/.metagpt/config2.yaml``, set HOME and METAGPT_PROJECT_ROOT; return the config path."""
    if "metagpt.const" in sys.modules:
        raise InputError("prepare_home must run before metagpt is imported (its paths are fixed at import)")
    root = Path(root)
    config = root / ".metagpt" / "config2.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    llm = {"api_type": "openai", "model": model, "base_url": base_url, "api_key": api_key, "stream": stream,
           "calc_usage": False}
    # JSON is valid YAML: no YAML writer needed here.
    config.write_text(json.dumps({"llm": llm, "repair_llm_output": True}, indent=2) + "\n")
    (root / "project").mkdir(exist_ok=True)
    os.environ["HOME"] = str(root)
    os.environ["METAGPT_PROJECT_ROOT"] = str(root / "project")
    return config


def prepare_temporary_home(prefix: str = "agentracer-metagpt-", **options: object) -> Path:
    """``prepare_home`` in a new temporary folder that is removed when the process exits (a script's or
    benchmark's MetaGPT workspace); ``options`` as for ``prepare_home``. Returns the folder."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    prepare_home(root, **options)  # type: ignore[arg-type]
    return root
