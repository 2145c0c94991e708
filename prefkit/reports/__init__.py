"""Reports: plots shared by the core and plugins (``prefkit.reports.plots``)."""
