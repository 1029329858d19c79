"""Imported models kept in the node home: ``<home>/models/<id>.gaiam``, and ``<name>.json`` describing each name.

A model's id is the content id (BLAKE3) of its compact bytes, so importing the same model under two
names keeps one copy. The directory is 0700 and its files 0600, each written to a temporary file,
synced and renamed.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import attrs

from gaia_core.config import PRIVATE_DIR, PRIVATE_FILE, Home
from gaia_core.errors import UsageError
from gaia_core.hashing import content_id
from gaia_core.models.graph import Graph

SUFFIX = ".gaiam"
#: A model name: what ``gaia model run NAME`` finds it by.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ID = re.compile(r"[0-9a-f]{64}")


@attrs.frozen
class StoredModel:
    """A model in the store, as ``gaia model ls`` shows it."""

    id: str
    name: str
    source: str
    imported: float
    input_dims: tuple[int, ...]
    output_dims: tuple[int, ...]
    parameters: int
    ops: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {**attrs.asdict(self), "input_dims": list(self.input_dims), "output_dims": list(self.output_dims)}


class ModelStore:
    """The models of one node home."""

    def __init__(self, home: Home) -> None:
        self.root = home.root / "models"

    def add(self, graph: Graph, *, name: str, source: str) -> StoredModel:
        """Keep ``graph`` under ``name`` (replacing the name's earlier model); its description."""
        if not NAME.fullmatch(name):
            raise UsageError(f"model name {name!r} is not valid",
                             hint="use up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        data = graph.encode()
        model = StoredModel(id=content_id(data), name=name, source=source, imported=time.time(),
                            input_dims=graph.input_dims, output_dims=graph.output_dims,
                            parameters=graph.parameters, ops=len(graph.ops), bytes=len(data))
        self.root.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
        self.root.chmod(PRIVATE_DIR)
        _write_private(self.root / f"{model.id}{SUFFIX}", data)
        replaced = next((m for m in self.list() if m.name == name), None)
        _write_private(self.root / f"{name}.json", json.dumps(model.to_dict(), indent=1).encode())
        if replaced is not None and replaced.id != model.id:
            self._drop_unnamed(replaced.id)
        return model

    def list(self) -> list[StoredModel]:
        """Every model kept, by name."""
        if not self.root.is_dir():
            return []
        models = []
        for path in self.root.glob("*.json"):
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                raw.update(input_dims=tuple(raw["input_dims"]), output_dims=tuple(raw["output_dims"]))
                model = StoredModel(**raw)
                if model.name != path.stem or not NAME.fullmatch(model.name) or not _ID.fullmatch(model.id):
                    continue  # renamed or edited by hand: its name or id would name files outside the store
                models.append(model)
            except (OSError, ValueError, TypeError, KeyError):
                continue  # a description being written, or not one of ours
        return sorted(models, key=lambda m: (m.name, m.id))

    def find(self, ref: str) -> StoredModel:
        """The model named ``ref``, or whose id starts with ``ref``; UsageError when none or several."""
        models = self.list()
        named = [m for m in models if m.name == ref]
        found = named or [m for m in models if len(ref) >= 4 and m.id.startswith(ref.lower())]
        if len(found) == 1:
            return found[0]
        if not found:
            raise UsageError(f"no model {ref!r} in {self.root}",
                             hint="list the models with `gaia model ls`; add one with `gaia model import FILE.onnx`")
        raise UsageError(f"{ref!r} matches {len(found)} models: {', '.join(m.name for m in found)}",
                         hint="give the model's name")

    def read(self, model: StoredModel) -> bytes:
        """A stored model's compact bytes, checked against its id."""
        try:
            data = (self.root / f"{model.id}{SUFFIX}").read_bytes()
        except OSError as exc:
            raise UsageError(f"model {model.name} ({model.id[:12]}) cannot be read in {self.root}: {exc.strerror}",
                             hint=f"remove it with `gaia model rm {model.id[:12]}` and import it again") from None
        if content_id(data) != model.id:
            raise UsageError(f"model {model.name} ({model.id[:12]}) is corrupt in {self.root}",
                             hint=f"remove it with `gaia model rm {model.id[:12]}` and import it again")
        return data

    def remove(self, model: StoredModel) -> None:
        """Delete a model's name, and its bytes when no other name holds them."""
        (self.root / f"{model.name}.json").unlink(missing_ok=True)
        self._drop_unnamed(model.id)

    def _drop_unnamed(self, model_id: str) -> None:
        if not any(m.id == model_id for m in self.list()):
            (self.root / f"{model_id}{SUFFIX}").unlink(missing_ok=True)


def _write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` durably: a 0600 temporary file, synced, renamed over it."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)  # whatever the umask
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
