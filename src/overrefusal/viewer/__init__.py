"""Local web viewer for browsing run rows and relabelling responses."""
