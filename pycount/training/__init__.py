"""Stage 2, `make train`: the pycaffe solver loop (validation, snapshots, resume, weight
averaging), the frozen-trunk feature cache, and the N x seed protocol sweep."""
