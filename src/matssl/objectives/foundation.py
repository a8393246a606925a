"""`foundation`: a pretrained universal interatomic potential (`model`, one of matssl.foundation.MODELS) as the
representation, frozen. Nothing is pretrained here: the `foundation` stage computes its crystal features for each
dataset, and finetuning trains the same head as every other method on them, by the same protocol."""

from matssl.foundation import MODELS
from matssl.objectives.base import Objective, register


@register
class Foundation(Objective):
    name = "foundation"
    defaults = {"model": "chgnet"}
    choices = {"model": tuple(MODELS)}
    trains = False
    frozen = True
