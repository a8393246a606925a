"""matssl: does self-supervised pretraining help your materials property, and by how much?"""

__version__ = "0.1.0"
