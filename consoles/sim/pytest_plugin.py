"""pytest plugin: ``ailive_desk``, a simulated desk running for one test.

Installed with the package under the ``pytest11`` entry point, so a project
that depends on ailive-bridge gets the fixture without a conftest. The desk
runs on the test's asyncio event loop (pytest-asyncio), which is why the
fixture is only defined where pytest-asyncio is installed; elsewhere asking
for it fails with the reason.

Which desk: ``@pytest.mark.parametrize("ailive_desk", ["x32", "wing"], indirect=True)``
(a profile name or file, or a dict of :func:`simulated_desk` options), or
``@pytest.mark.ailive_desk("xair", channels=8)``; default ``x32``.
"""
from __future__ import annotations

from typing import Any, AsyncIterator

import pytest

MARKER = "ailive_desk"
#: Keywords the marker and a parameter dict may give (those of ``simulated_desk``).
OPTIONS = ("profile", "channels", "host", "port", "seed", "send_to", "profile_dirs")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(profile='x32', **options): the desk the ailive_desk fixture starts: a profile name or file; "
        "options: channels, seed, host, port, send_to, profile_dirs",
    )


def desk_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The fixture's desk: the default, then the closest marker, then an indirect parameter."""
    options: dict[str, Any] = {"profile": "x32"}
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        if len(marker.args) > 1:
            pytest.fail(f"{MARKER}: one profile, then options by keyword; got {marker.args!r}", pytrace=False)
        options.update(dict(zip(("profile",), marker.args)), **marker.kwargs)
    param = getattr(request, "param", None)
    if param is not None:
        options.update(param if isinstance(param, dict) else {"profile": param})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        pytest.fail(f"{MARKER}: unknown option {unknown[0]!r}; known: {', '.join(OPTIONS)}", pytrace=False)
    return options


try:
    import pytest_asyncio
except ImportError:
    pytest_asyncio = None

if pytest_asyncio is not None:
    @pytest_asyncio.fixture
    async def ailive_desk(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
        """A running ``SimulatedDesk`` on a free loopback port; see docs/simulators.md."""
        from .harness import simulated_desk

        async with simulated_desk(**desk_options(request)) as desk:
            yield desk
else:
    @pytest.fixture
    def ailive_desk(request: pytest.FixtureRequest) -> Any:
        """Needs pytest-asyncio: the simulated desk runs on the test's event loop."""
        pytest.fail("the ailive_desk fixture needs pytest-asyncio (pip install pytest-asyncio): "
                    "the simulated desk runs on the test's event loop", pytrace=False)
