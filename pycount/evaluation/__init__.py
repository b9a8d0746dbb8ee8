"""Stage 3, `make eval`: the test images counted, MRE and MAE +- std."""
