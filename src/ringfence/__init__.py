"""ringfence: a control plane that keeps one bad update from taking down a whole fleet.

The package is layered (see docs/adr/0001-layers.md):

* :mod:`ringfence.domain` — pure model and rules; no I/O, no wall clock.
* :mod:`ringfence.services` — use cases; call the domain and persist through stores.
* :mod:`ringfence.adapters` — database, HTTP API and file formats.
* :mod:`ringfence.cli` — the ``ringfence`` command.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
