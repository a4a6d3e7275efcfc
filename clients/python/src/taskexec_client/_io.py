"""The only I/O of the client: performing a flow's commands with httpx, blocking or async.

The two drivers are kept line for line alike; everything that decides anything lives in the
flows (`core.py`, `streams.py`, `protocol.py`).
"""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

import httpx

from taskexec_client.protocol import (
    Close,
    Command,
    Flow,
    Open,
    Outcome,
    ReadLine,
    Send,
    Sleep,
    Stream,
    build_request,
)

T = TypeVar("T")
E = TypeVar("E")


class SyncDriver:
    """Runs flows on an `httpx.Client`."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self._lines: dict[int, tuple[httpx.Response, Iterator[str]]] = {}

    def perform(self, command: Command) -> Outcome:
        try:
            if isinstance(command, Send):
                return self.http.send(build_request(self.http, command.call))
            if isinstance(command, Open):
                response = self.http.send(build_request(self.http, command.call), stream=True)
                if response.status_code != 200:
                    response.read()
                    response.close()
                    return response
                self._lines[id(response)] = (response, response.iter_lines())
                return response
            if isinstance(command, ReadLine):
                return next(self._lines[id(command.response)][1], None)
        except httpx.TransportError as exc:
            return exc
        if isinstance(command, Sleep):
            time.sleep(command.seconds)
        elif isinstance(command, Close):
            self._close(command.response)
        return None

    def _close(self, response: httpx.Response) -> None:
        self._lines.pop(id(response), None)
        response.close()

    def close_streams(self) -> None:
        for response, _ in list(self._lines.values()):
            self._close(response)

    def run(self, flow: Flow[T]) -> T:
        outcome: Outcome = None
        try:
            while True:
                try:
                    command = flow.send(outcome)
                except StopIteration as stop:
                    result: T = stop.value
                    return result
                outcome = self.perform(command)
        finally:
            flow.close()
            self.close_streams()

    def iterate(self, flow: Stream[E]) -> Iterator[E]:
        outcome: Outcome = None
        try:
            while True:
                try:
                    item = flow.send(outcome)
                except StopIteration:
                    return
                if isinstance(item, Command):
                    outcome = self.perform(item)
                else:
                    outcome = None
                    yield item
        finally:
            flow.close()
            self.close_streams()


class AsyncDriver:
    """Runs flows on an `httpx.AsyncClient`."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self._lines: dict[int, tuple[httpx.Response, AsyncIterator[str]]] = {}

    async def perform(self, command: Command) -> Outcome:
        try:
            if isinstance(command, Send):
                return await self.http.send(build_request(self.http, command.call))
            if isinstance(command, Open):
                response = await self.http.send(build_request(self.http, command.call), stream=True)
                if response.status_code != 200:
                    await response.aread()
                    await response.aclose()
                    return response
                self._lines[id(response)] = (response, response.aiter_lines())
                return response
            if isinstance(command, ReadLine):
                return await anext(self._lines[id(command.response)][1], None)
        except httpx.TransportError as exc:
            return exc
        if isinstance(command, Sleep):
            await asyncio.sleep(command.seconds)
        elif isinstance(command, Close):
            await self._close(command.response)
        return None

    async def _close(self, response: httpx.Response) -> None:
        self._lines.pop(id(response), None)
        await response.aclose()

    async def close_streams(self) -> None:
        for response, _ in list(self._lines.values()):
            await self._close(response)

    async def run(self, flow: Flow[T]) -> T:
        outcome: Outcome = None
        try:
            while True:
                try:
                    command = flow.send(outcome)
                except StopIteration as stop:
                    result: T = stop.value
                    return result
                outcome = await self.perform(command)
        finally:
            flow.close()
            await self.close_streams()

    async def iterate(self, flow: Stream[E]) -> AsyncIterator[E]:
        outcome: Outcome = None
        try:
            while True:
                try:
                    item = flow.send(outcome)
                except StopIteration:
                    return
                if isinstance(item, Command):
                    outcome = await self.perform(item)
                else:
                    outcome = None
                    yield item
        finally:
            flow.close()
            await self.close_streams()
