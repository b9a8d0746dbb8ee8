"""Measurement code, outside the product package: speed of every stage against PyTorch peers
built from the same prototxts (`pycount bench`, results in bench/results/)."""
