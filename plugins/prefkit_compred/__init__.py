"""prefkit-compred: community-conditioned preference alignment on Reddit (ComPreD).

The method of "ComPO: Community Preferences for Language Model Personalization" (Kumar et al.).
"""

__version__ = "0.1.0"
