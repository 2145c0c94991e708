"""prefkit-persona: persona inference, evaluation, augmentation and persona tailoring.

The method of "Whose Boat Does it Float? Improving Personalization in Preference
Tuning via Inferred User Personas" (Balepur et al.).
"""

__version__ = "0.1.0"
