"""idcclf: invasive ductal carcinoma classification of breast histopathology patches."""

__version__ = "0.1.0"
