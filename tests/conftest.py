"""Test session setup shared by every suite.

Airflow reads ``AIRFLOW_HOME`` when it is first imported, so a private home is created here, before
any test module imports Airflow. Fixtures live in ``tests/plugins/`` by topic.
"""

from __future__ import annotations

import os
import pathlib
import tempfile

_HOME = pathlib.Path(tempfile.mkdtemp(prefix="wamm-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(pathlib.Path(__file__).parent / "dags")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")

pytest_plugins = [
    "tests.plugins.spec_fixtures",
    "tests.plugins.sandbox_fixtures",
    "tests.plugins.airflow_fixtures",
    "tests.plugins.log_capture",
]
