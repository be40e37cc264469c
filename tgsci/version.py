"""The package version, in its own module so every part of tgsci can read it without import cycles."""

__version__ = "0.2.0"
