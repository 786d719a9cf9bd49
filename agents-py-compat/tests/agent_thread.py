"""Runs an agent's `run()` on a thread with its own metrics registry, as its process would, and
reads its metrics back."""

from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry

JOIN_TIMEOUT_S = 30.0


class AgentThread:
    def __init__(self, agent, config, **options) -> None:
        self.stop = threading.Event()
        self.registry = CollectorRegistry()
        self.handled: int | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(agent, config, options), daemon=True)

    def _run(self, agent, config, options) -> None:
        try:
            self.handled = agent(config, self.stop, registry=self.registry, **options)
        except BaseException as e:  # re-raised by join() in the test's thread
            self.error = e

    def start(self) -> AgentThread:
        self._thread.start()
        return self

    def join(self, timeout: float = JOIN_TIMEOUT_S) -> int:
        """Waits for the agent to return on its own (its items done); re-raises its error."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the agent did not finish within {timeout} s"
        if self.error is not None:
            raise self.error
        return self.handled

    def stop_and_join(self, timeout: float = JOIN_TIMEOUT_S) -> int:
        self.stop.set()
        return self.join(timeout)

    def sample(self, name: str, **labels) -> float | None:
        return self.registry.get_sample_value(name, labels)


def run_agent(agent, config, **options) -> AgentThread:
    """Runs an agent to completion (it must be bounded, e.g. by max_items) and returns it."""
    finished = AgentThread(agent, config, **options).start()
    finished.join()
    return finished


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02, message: str = "condition"):
    """Polls `predicate` until it returns a truthy value, which is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)
