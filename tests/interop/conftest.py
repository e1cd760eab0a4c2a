"""Fixtures shared by the interop test modules (pytest finds this file next to them).

`ctx`: a PC/SC context on the module's daemon (its `daemon` fixture), released after the test.
A module that needs a different context defines its own `ctx`, which takes precedence.
"""
import pytest
from smartcard.scard import (
    SCARD_S_SUCCESS, SCARD_SCOPE_USER, SCardEstablishContext, SCardReleaseContext)


@pytest.fixture
def ctx(daemon):
    daemon.ensure()
    hr, c = SCardEstablishContext(SCARD_SCOPE_USER)
    assert hr == SCARD_S_SUCCESS
    yield c
    SCardReleaseContext(c)
