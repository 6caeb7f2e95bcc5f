"""The batch-engine interface in this process: blocks, order, payload loading, errors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from kgrec.embeddings.ray_cluster import pack_directory, unpack_directory
from kgrec.recommenders.batch.engine_choice import engine_class
from kgrec.recommenders.batch.engines import LocalEngine, Payload, block_size, blocks_of


def _echo(context: dict, users: Sequence[str], options: str, states: Sequence[str] | None) -> list[str]:
    return [f"{context['prefix']}{options}{u}{'' if states is None else '=' + s}"
            for u, s in zip(users, states or users, strict=True)]


def _short(context: dict, users: Sequence[str], options: None, states: None) -> list[str]:
    return list(users)[:-1]


def test_blocks_cover_every_user_once_in_order() -> None:
    users = [f"u{i}" for i in range(23)]
    assert [u for b in blocks_of(users, 5) for u in b] == users
    assert [len(b) for b in blocks_of(users, 5)] == [5, 5, 5, 5, 3]
    assert block_size(0, 2) == 1 and block_size(10, 2) == 1 and block_size(10_000, 2) == 256
    assert block_size(1892, 2) == 119


@pytest.mark.parametrize("block", [1, 4, 100])
def test_local_engine_keeps_the_users_order_whatever_the_block(block: int) -> None:
    users = [f"u{i}" for i in range(17)] + ["u3"]
    with LocalEngine(Payload(load=dict, loaded={"prefix": "p:"}), block=block) as engine:
        out = list(engine.run(_echo, "x-", users))
    assert out == [(u, f"p:x-{u}") for u in users]


def test_each_users_state_is_read_here_as_its_block_is_handed_out() -> None:
    users = [f"u{i}" for i in range(7)]
    read: list[str] = []

    def state(user: str) -> str:
        read.append(user)
        return user.upper()

    with LocalEngine(Payload(load=dict, loaded={"prefix": ""}), block=3) as engine:
        out = engine.run(_echo, "", users, state=state)
        assert next(out) == ("u0", "u0=U0") and read == ["u0", "u1", "u2"]
        assert list(out) == [(u, f"{u}={u.upper()}") for u in users[1:]]
    assert read == users


def test_local_engine_loads_a_directory_payload_once(tmp_path: Path) -> None:
    calls: list[Path] = []

    def load(directory: Path) -> dict:
        calls.append(directory)
        return {"prefix": (directory / "prefix.txt").read_text()}

    (tmp_path / "prefix.txt").write_text("d:")
    engine = LocalEngine(Payload(load=load, directory=tmp_path), block=2)
    assert [r for _, r in engine.run(_echo, "", ["a", "b", "c"])] == ["d:a", "d:b", "d:c"]
    assert [r for _, r in engine.run(_echo, "", ["e"])] == ["d:e"]
    assert calls == [tmp_path]


def test_a_task_that_drops_users_is_an_error() -> None:
    engine = LocalEngine(Payload(load=dict, loaded={}), block=2)
    with pytest.raises(RuntimeError, match="returned 1 results for 2 users"):
        list(engine.run(_short, None, ["a", "b"]))


def test_engines_by_name_and_bad_arguments() -> None:
    assert engine_class("local") is LocalEngine
    assert engine_class("ray").name == "ray"
    with pytest.raises(ValueError, match="unknown engine"):
        engine_class("spark")
    with pytest.raises(ValueError, match="at least 1"):
        LocalEngine(Payload(load=dict, loaded={}), workers=0)
    with pytest.raises(ValueError, match="no directory"):
        engine_class("ray")(Payload(load=dict, loaded={}))


def test_packed_directories_round_trip_and_refuse_escapes(tmp_path: Path) -> None:
    import io
    import tarfile

    src = tmp_path / "src"
    (src / "models" / "a").mkdir(parents=True)
    (src / "manifest.json").write_text("{}")
    (src / "models" / "a" / "arrays.npz").write_bytes(bytes(range(256)))
    out = tmp_path / "out"
    unpack_directory(pack_directory(src), out)
    assert (out / "manifest.json").read_text() == "{}"
    assert (out / "models" / "a" / "arrays.npz").read_bytes() == bytes(range(256))

    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(tarfile.TarError):
        unpack_directory(evil.getvalue(), tmp_path / "evil")
    assert not (tmp_path / "escaped.txt").exists()


def test_recommend_output_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    from kgrec.cli.output_file import whole_file as _output

    target = tmp_path / "recs.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), _output(target) as out:
        out.write("half\n")
        raise RuntimeError("worker died")
    assert target.read_text() == "old\n"
    assert list(tmp_path.iterdir()) == [target]
    with _output(target) as out:
        out.write("new\n")
    assert target.read_text() == "new\n" and list(tmp_path.iterdir()) == [target]


def test_an_unreachable_ray_address_fails_fast() -> None:
    import socket

    from kgrec.embeddings.ray_cluster import check_reachable

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        check_reachable(f"127.0.0.1:{port}")
        check_reachable(f"ray://127.0.0.1:{port}")
    with pytest.raises(ConnectionError, match="cannot reach the Ray cluster"):
        check_reachable(f"127.0.0.1:{port}", timeout=2)
    check_reachable("auto")
