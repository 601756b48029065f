"""boothkey: reproducible, verified, signed boot images for voting booths."""

__version__ = "0.1.0"
