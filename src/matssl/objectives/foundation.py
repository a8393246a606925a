"""`foundation`: a pretrained universal interatomic potential (`model`, one of matssl.foundation.MODELS) as the
representation. Nothing is pretrained here. `train: head` (frozen): the `foundation` stage computes its crystal
features for each dataset, and finetuning trains the same head as every other method on them, by the same protocol;
`train: all`: the same head on the same crystal features, and every weight of the model trains with it (slow on a
CPU: for a GPU)."""

from matssl.foundation import MODELS
from matssl.objectives.base import MethodKind, Objective, register


@register
class Foundation(Objective):
    name = "foundation"
    defaults = {"model": "chgnet", "train": "head"}
    choices = {"model": tuple(MODELS), "train": ("head", "all")}
    kind = MethodKind.FOUNDATION
