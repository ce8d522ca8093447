"""``gradellm sweep``: explain then evaluate every (model, dataset, method, record) unit into a run folder.

Modules, one job each: :mod:`.plan` (options and the unit plan), :mod:`.manifest` (one configuration
per folder), :mod:`.sharding` (which units this process runs), :mod:`.store` (crash-safe commits and
merged reading), :mod:`.runner` (the loop), :mod:`.run` (:func:`~gradellm_cli.sweep.run.sweep_to`: all of it, locked),
:mod:`.progress` (the terminal bar). Importing this
package (e.g. for :func:`read_run`) does not import torch.
"""

from .manifest import MANIFEST, read_manifest
from .sharding import Shard, parse_shard
from .store import done_units, read_run

__all__ = ["MANIFEST", "Shard", "done_units", "parse_shard", "read_manifest", "read_run"]
