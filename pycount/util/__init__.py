"""Small helpers every stage uses: atomic writes (nothing half-written is taken for a result) and
the terminal progress bar."""
