"""Stage 1, `make prepare`: dataset readers and generators, splits, sliding-window patches and
density targets, and the LMDBs Caffe trains from."""
