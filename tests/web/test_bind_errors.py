"""Why `serve` cannot listen, told by the cause: a port in use, an address this machine does
not have, a host name that does not resolve. (The hint used to blame another program for all.)"""

import socket

import pytest

from gremlin.errors import GremlinError
from gremlin.web.server import listen_socket


def refusal(bind: str) -> GremlinError:
    with pytest.raises(GremlinError) as caught:
        listen_socket(bind).close()
    return caught.value


def test_a_port_in_use_says_so() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        e = refusal(f"127.0.0.1:{port}")
    assert "Address already in use" in str(e)
    assert e.hint and "Another program uses that port" in e.hint


def test_an_address_of_another_machine_is_not_blamed_on_a_program() -> None:
    e = refusal("192.0.2.1:0")  # TEST-NET-1: no interface here has it
    assert e.hint and "No interface of this machine has that address" in e.hint


def test_a_host_that_does_not_resolve_asks_for_an_address() -> None:
    e = refusal("256.1.1.1:0")
    assert e.hint and "address of this machine" in e.hint and "Another program" not in e.hint
