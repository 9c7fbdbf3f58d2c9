"""--check-secrets: the scan finds a secret's bytes wherever an image keeps them."""

from __future__ import annotations

import io
import json
import tarfile

from pipeline.backends.secretscan import describe, needles, scan_archive

SECRET = b"s3cr3t-t0ken-value"


def _tar(files: dict[str, bytes], *, gz: bool = False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _archive(layers: dict[str, bytes], config: dict[str, object]) -> io.BytesIO:
    files = {f"{name}/layer.tar": layer for name, layer in layers.items()}
    files["config.json"] = json.dumps(config).encode()
    files["manifest.json"] = json.dumps([{"Config": "config.json"}]).encode()
    return io.BytesIO(_tar(files))


def test_a_secret_in_a_layer_a_later_layer_deletes_is_found() -> None:
    layers = {
        "aaa": _tar({"etc/ok": b"nothing here", "root/.token": b"x" * 5000 + SECRET + b"\n"}),
        "bbb": _tar({"root/.wh..token": b""}),  # the whiteout: gone from the final filesystem
    }
    found = scan_archive(_archive(layers, {"config": {"Env": ["A=1"]}}), needles({"tok": SECRET}))
    assert found == ["'tok' in aaa/layer.tar: root/.token"]


def test_config_history_and_compressed_layers_are_scanned() -> None:
    config = {"history": [{"created_by": f"RUN echo {SECRET.decode()} > /dev/null"}]}
    layers = {"ccc": _tar({"app/main.py": b"TOKEN = '" + SECRET + b"'"}, gz=True)}
    found = scan_archive(_archive(layers, config), needles({"tok": SECRET + b"\n"}))
    assert "'tok' in ccc/layer.tar: app/main.py" in found
    assert "'tok' in config.json" in found
    assert SECRET.decode() not in describe(found)  # where, never the value


def test_a_secret_across_a_chunk_boundary_is_found() -> None:
    data = b"y" * ((1 << 20) - 5) + SECRET
    found = scan_archive(_archive({"ddd": _tar({"big": data})}, {}), needles({"tok": SECRET}))
    assert found == ["'tok' in ddd/layer.tar: big"]


def test_a_clean_image_and_short_values_give_nothing() -> None:
    layers = {"eee": _tar({"etc/hosts": b"127.0.0.1 localhost\n"})}
    assert scan_archive(_archive(layers, {}), needles({"tok": SECRET})) == []
    assert needles({"short": b"ab\n"}) == {}  # would match by chance: not looked for


def test_a_multi_line_secret_is_looked_for_whole() -> None:
    """A common line of a key file (its armour, a [default] header) is in clean images: only
    the value itself fails a scan."""
    key = b"[default]\nMIIBs3cr3tl1ne\n"
    layers = {
        "fff": _tar({"etc/aws.example": b"[default]\nregion = x\n"}),
        "ggg": _tar({"root/key": key}),
    }
    found = scan_archive(_archive(layers, {}), needles({"key": key}))
    assert found == ["'key' in ggg/layer.tar: root/key"]
