"""Model folders for vocalsep (``fine``), registered through the ``vocalsep.models`` entry point."""
