"""The Dagster code location: a loader for `orchestration/defs/` (see workspace.yaml)."""

import dagster as dg

from orchestration.lib.paths import PROJECT_ROOT

defs = dg.load_from_defs_folder(path_within_project=PROJECT_ROOT)
