"""srgan_core: SRGAN super-resolution and a toy 1-D GAN, small enough to read.

The library never imports gradio: `app.py` and `python -m srgan_core` are thin shells over it.
"""
__version__ = "0.1.0"
