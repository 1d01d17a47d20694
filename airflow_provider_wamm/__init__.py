"""Apache Airflow provider for WhatsApp's Marketing Messages API.

The ``graph`` and ``campaign`` packages work without Airflow; the Airflow classes live in
``hooks``, ``operators``, ``sensors`` and ``triggers``.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
