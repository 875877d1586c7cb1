"""The course's diagrams, one module per topic; `tools/draw_figures.py` draws them all."""
