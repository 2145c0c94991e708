"""prefkit-nppl: few-shot steerable reward models and policies with neural processes.

The method of "Towards Few-shot Steerable Alignment" (Kobalczyk et al.).
"""

__version__ = "0.1.0"
