"""Data in: readers, simulators, downloaders and preprocessing, all producing AnnData."""
