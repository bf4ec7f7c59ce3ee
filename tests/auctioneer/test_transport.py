"""One transport protocol, two implementations: the same contract for both (send to a named
peer, receive, reply along the route; an unknown peer is dropped, never an exception), the
ZeroMQ size limit, and the virtual clock the simulations run on."""

import asyncio
import time

import pytest

from mercat.auctioneer.local import free_port
from mercat.auctioneer.transport import InProcessHub, Transport
from mercat.auctioneer.virtual_clock import VirtualClockLoop
from mercat.auctioneer.zmq_transport import ZmqTransport


async def in_process_pair():
    hub = InProcessHub()
    return hub.endpoint("server"), hub.endpoint("client")


async def zmq_pair(max_bytes=1 << 20):
    address = f"tcp://127.0.0.1:{free_port()}"
    server = ZmqTransport({}, bind=address, max_bytes=max_bytes)
    client = ZmqTransport({"server": address}, max_bytes=max_bytes)
    return server, client


@pytest.mark.parametrize("make", [in_process_pair, zmq_pair], ids=["in-process", "zeromq"])
def test_the_transport_contract(make):
    async def main():
        server, client = await make()
        assert isinstance(server, Transport) and isinstance(client, Transport)
        try:
            client.send("server", [b"header", b"body", b"sig"])
            got = await asyncio.wait_for(server.recv(), 5)
            assert got.frames == [b"header", b"body", b"sig"]
            server.reply(got.route, [b"answer", b"", b""])
            back = await asyncio.wait_for(client.recv(), 5)
            assert back.frames == [b"answer", b"", b""]
            client.send("nobody", [b"x"])  # dropped and logged, not raised
        finally:
            await server.aclose()
            await client.aclose()

    asyncio.run(main())


def test_zeromq_refuses_frames_over_the_limit():
    async def main():
        server, client = await zmq_pair(max_bytes=1000)
        try:
            client.send("server", [b"h", bytes(5000), b"s"])
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(server.recv(), 0.5)  # ZeroMQ dropped the peer
        finally:
            await server.aclose()
            await client.aclose()

    asyncio.run(main())


def test_virtual_time_jumps_and_a_stuck_simulation_raises():
    async def sleeper():
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(3600)
        return loop.time() - start

    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        started = time.perf_counter()
        assert runner.run(sleeper()) == pytest.approx(3600)
        assert time.perf_counter() - started < 60.0  # an hour of virtual time, not of real

    async def stuck():
        await asyncio.Event().wait()  # nothing will ever set it, and no timer is pending

    with (
        asyncio.Runner(loop_factory=VirtualClockLoop) as runner,
        pytest.raises(RuntimeError, match="stuck"),
    ):
        runner.run(stuck())


def test_providers_send_to_each_others_router_and_never_read_their_dealers():
    # 50 messages each way, sent before anyone reads: the ROUTER's drain finds them all
    async def main():
        a, b = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
        p1 = ZmqTransport({"p2": b}, bind=a)
        p2 = ZmqTransport({"p1": a}, bind=b)
        try:
            for i in range(50):  # many sends in a row: none is lost, none stalls a reader
                p1.send("p2", [b"h", str(i).encode(), b"s"])
                p2.send("p1", [b"h", str(i).encode(), b"s"])
            for receiver in (p1, p2):
                got = [await asyncio.wait_for(receiver.recv(), 5) for _ in range(50)]
                assert [g.frames[1] for g in got] == [str(i).encode() for i in range(50)]
                assert {g.route[0] for g in got} == {"router"}
            assert p1.recv_nowait() is None and p1.dropped == p2.dropped == 0
            assert p1._readers == []  # the ROUTER is drained on its descriptor's signal,
            # and the DEALER only sends
        finally:
            await p1.aclose()
            await p2.aclose()

    asyncio.run(main())


def test_a_reply_on_the_router_never_leaves_a_message_unnoticed():
    """A send on the ROUTER can consume its descriptor's edge: the drain after each reply
    must still pick up what arrived meanwhile (a client asking again and again)."""

    async def main():
        server, client = await zmq_pair()
        try:
            for i in range(200):
                client.send("server", [b"ask", str(i).encode(), b""])
                got = await asyncio.wait_for(server.recv(), 5)
                assert got.frames[1] == str(i).encode()
                server.reply(got.route, [b"answer", got.frames[1], b""])
                back = await asyncio.wait_for(client.recv(), 5)
                assert back.frames[1] == str(i).encode()
        finally:
            await server.aclose()
            await client.aclose()

    asyncio.run(main())
