"""Figures (Fig. 6, Fig. 7, loss curves), metric tables and the replication audit."""
