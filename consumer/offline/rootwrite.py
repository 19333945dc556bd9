"""Write flat TTrees with uproot the way the input contract names branches.

Jagged per-jet columns grouped in a record ``{"jet": ak.zip({...})}`` become branches
``jet_<name>`` sharing one counter ``njet`` (uproot's default would name them ``jet.<name>``).
"""

from __future__ import annotations

from collections.abc import Mapping

import awkward as ak
import numpy as np


def _field_name(outer: str, inner: str) -> str:
    return inner if outer == "" else f"{outer}_{inner}"


def _counter_name(name: str) -> str:
    return f"n{name}"


def branch_types(branches: Mapping[str, object]) -> dict[str, object]:
    """uproot mktree types of numpy / awkward columns."""
    types: dict[str, object] = {}
    for key, value in branches.items():
        if isinstance(value, np.ndarray):
            types[key] = value.dtype if value.ndim == 1 else (value.dtype, value.shape[1:])
        else:
            types[key] = ak.type(value).content
    return types


def create_tree(directory, name: str, branches: Mapping[str, object]):  # -> uproot WritableTree
    """Create TTree ``name`` typed after ``branches`` and fill it with them; return it for ``extend``."""
    tree = directory.mktree(name, branch_types(branches), field_name=_field_name, counter_name=_counter_name)
    tree.extend(dict(branches))
    return tree
