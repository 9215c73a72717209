"""Backends: the services the engine launches runs on, behind one small interface."""

from .base import Backend, LaunchSpec, RunResult, Usage

__all__ = ["Backend", "LaunchSpec", "RunResult", "Usage"]
