"""`events()` resumes by itself after the test cuts its connection mid-stream."""

from pathlib import Path

import pytest

from taskexec_client import AsyncClient, Client, JobEvent
from tests.client.conftest import fast_retries
from tests.client.proxy import TcpProxy
from tests.e2e.conftest import ServerProcess

pytestmark = pytest.mark.e2e


def stream_requests(proxy: TcpProxy) -> list[str]:
    return [
        head.decode("latin-1") for head in proxy.requests if b"/$stream" in head.split(b"\r\n")[0]
    ]


def assert_whole_history(events: list[JobEvent]) -> None:
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type == "completed"
    types = [e.type for e in events]
    assert types.count("log") == 2
    assert types.count("progress") == 2


def test_a_cut_stream_resumes_with_last_event_id_and_loses_nothing(
    live_server: ServerProcess, proxy_factory: type[TcpProxy], tmp_path: Path
) -> None:
    proxy = proxy_factory(live_server.port)
    release = tmp_path / "release"
    with Client(proxy.url, retry=fast_retries()) as client:
        job = client.submit("live_steps", {"release": str(release)})
        events: list[JobEvent] = []
        cut_after = 0
        for event in client.events(job.id):
            events.append(event)
            if event.type == "progress" and not cut_after:
                cut_after = event.seq
                proxy.cut()
                release.touch()

    assert cut_after > 0
    assert_whole_history(events)
    heads = stream_requests(proxy)
    assert len(heads) >= 2
    assert "last-event-id" not in heads[0].lower()
    assert f"last-event-id: {cut_after}\r\n" in heads[1].lower()


async def test_the_async_client_resumes_the_same_way(
    live_server: ServerProcess, proxy_factory: type[TcpProxy], tmp_path: Path
) -> None:
    proxy = proxy_factory(live_server.port)
    release = tmp_path / "release"
    async with AsyncClient(proxy.url, retry=fast_retries()) as client:
        job = await client.submit("live_steps", {"release": str(release)})
        events: list[JobEvent] = []
        cut_after = 0
        async for event in client.events(job.id):
            events.append(event)
            if event.type == "progress" and not cut_after:
                cut_after = event.seq
                proxy.cut()
                release.touch()

    assert_whole_history(events)
    heads = stream_requests(proxy)
    assert len(heads) >= 2
    assert f"last-event-id: {cut_after}\r\n" in heads[1].lower()
