"""Graph runtimes: libvips (vips.py) and Pillow (pillow.py), and the op registry (ops.py)."""
