"""`pretrained`: an encoder trained elsewhere (a GPU cluster run, a colleague, a later release), given as the
path of its `encoder.pt`. Nothing is trained: the pretraining stage checks that the encoder fits this config's
encoder and graphs (a clear error naming every mismatch), and copies it; the stage is hashed by the file's
bytes, not its path. It is then finetuned and probed like every other method."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matssl.objectives.base import MethodKind, Objective, register


@register
class Pretrained(Objective):
    name = "pretrained"
    defaults = {"path": None}
    kind = MethodKind.IMPORTED
    files = ("path",)

    @classmethod
    def check_params(cls, params: dict[str, Any], where: str) -> None:
        super().check_params(params, where)
        path = params.get("path")
        if not path:
            raise ValueError(f"{where}: `path` (an encoder.pt file) is required")
        if not Path(path).is_file():
            raise ValueError(f"{where}: path {path!r} is not a file")
