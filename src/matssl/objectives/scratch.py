"""`scratch`: no pretraining. The encoder keeps its random initialisation; the baseline then runs
through exactly the same finetuning code as every pretrained encoder."""

from matssl.objectives.base import MethodKind, Objective, register


@register
class Scratch(Objective):
    name = "scratch"
    kind = MethodKind.SCRATCH
