"""ultrassl: self-supervised representation learning on ultrasound and natural video."""

__version__ = "0.1.0"
