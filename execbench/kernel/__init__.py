"""The simulated x86-64 kernel shared by every design (see :mod:`.machine`)."""
from .costs import Costs
from .machine import Area, Kernel, KernelConfig

__all__ = ["Area", "Costs", "Kernel", "KernelConfig"]
