"""Warnings as data: a known reason, a path, a detail, and the line they render to."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fda_vault._diagnostics import Diagnostic


def test_a_warning_renders_like_an_error_line() -> None:
    warning = Diagnostic(reason="left_out", path="/p/K1/a.pdf", detail="unreadable; not backed up")
    assert warning.message == "/p/K1/a.pdf — unreadable; not backed up"
    assert Diagnostic(reason="recovered", path="", detail="finished a restore").message == (
        "finished a restore"
    )


def test_an_unknown_reason_is_refused() -> None:
    with pytest.raises(ValidationError):
        Diagnostic(reason="something_new", path="x", detail="y")
