"""Rendering: flow, path and diff diagrams as DOT, and the HTML audit report."""
