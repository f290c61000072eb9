"""SIGTERM inside long work is Ctrl-C: a KeyboardInterrupt the runner and the sweep already handle."""

from __future__ import annotations

import os
import signal
import time

import pytest

from joulebench.cli.signals import terminate_as_interrupt


def test_sigterm_raises_keyboard_interrupt_inside_and_is_left_as_it_was_after() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), terminate_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler runs at the next bytecode; never reached
    assert signal.getsignal(signal.SIGTERM) is before
