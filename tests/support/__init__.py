"""Test helpers shared across test areas."""
