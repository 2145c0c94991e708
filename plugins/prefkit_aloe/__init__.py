"""prefkit-aloe: aligning LLMs with a user's unspoken preferences through multi-turn interaction.

The method of "Aligning LLMs with Individual Preferences via Interaction" (Wu et al., COLING 2025).
"""

__version__ = "0.1.0"
