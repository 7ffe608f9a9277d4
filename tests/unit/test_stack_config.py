"""The stack's settings (``STACK_*``): ports, the web port's fallback to IMGSERVER_PORT, the node
name per state dir, and the Procfile's roles."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from imgserver.stack import StackConfig, StackError, procfile_roles


def test_defaults_and_the_web_port_honours_imgserver_port(tmp_path: Path) -> None:
    c = StackConfig.from_env({"STACK_DIR": str(tmp_path)})
    assert c.ports == {
        "web": 8080,
        "redis": 6390,
        "amqp": 5690,
        "epmd": 4390,
        "s3": 9090,
        "urgent": 9101,
        "background": 9102,
    }
    assert StackConfig.from_env({"IMGSERVER_PORT": "8181"}).ports["web"] == 8181
    both = {"IMGSERVER_PORT": "8181", "STACK_WEB_PORT": "8282"}
    assert StackConfig.from_env(both).ports["web"] == 8282


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STACK_REDIS_PORT": "redis"}, "STACK_REDIS_PORT must be a TCP port, not 'redis'"),
        ({"STACK_S3_PORT": "70000"}, "STACK_S3_PORT must be a TCP port, not 70000"),
        ({"STACK_AMQP_PORT": "50000"}, "STACK_AMQP_PORT must be at most 45535"),
    ],
)
def test_bad_ports_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(StackError, match=message):
        StackConfig.from_env(env)


def test_one_node_name_per_state_dir(tmp_path: Path) -> None:
    a = StackConfig.from_env({"STACK_DIR": str(tmp_path / "a")})
    b = StackConfig.from_env({"STACK_DIR": str(tmp_path / "b")})
    again = StackConfig.from_env({"STACK_DIR": str(tmp_path / "a"), "STACK_AMQP_PORT": "5999"})
    assert a.node != b.node
    assert a.node == again.node  # the node finds its data again whatever its port
    assert a.node.endswith("@localhost")


def test_procfile_roles_run_on_this_interpreter(tmp_path: Path) -> None:
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        "# roles\nweb: python -m imgserver serve\n\nurgent: python -m workers urgent\n"
    )
    assert procfile_roles(procfile) == [
        ("web", [sys.executable, "-m", "imgserver", "serve"]),
        ("urgent", [sys.executable, "-m", "workers", "urgent"]),
    ]
