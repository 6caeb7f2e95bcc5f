"""The graph as neo4j-admin import files: ``kgrec export --format neo4j-csv DIR``.

``neo4j-admin database import full`` builds a database from CSV files whose header names each
column and its type: ``id:ID(User),:LABEL,title:string,attr_age:long`` for nodes and
``:START_ID(User),:END_ID(Item),:TYPE,weight:double`` for relationships. The properties and
keys are the stores' own (``graph.bulk`` net rows: ``attr_*`` attributes, absent values left
out; hidden items carry ``hidden: true``, located ones a ``location:point{crs:WGS-84}``), and the
ID groups (``User``, ``Item``, ``Tag``, ``Entity``, ``Attribute``) keep the key spaces apart,
so a user and an item may share an id. The ``KgrecState`` node gets a new ``hidden_rev``, so a
server that outlived the import re-reads the hidden set. A column has one type, while a free-form attribute (or an
int-or-float weight) may differ from node to node, so every label and type is written as one
file per property signature (its (name, type) list), each with its own header. Strings are
always quoted (``""`` is an empty string, never a missing value); a string holding a line break
makes the manifest ask for ``--multiline-fields``. ``manifest.json`` lists the files for
``deploy/neo4j/neo4j-local import``. The folder is written beside its target and renamed into
place, so it is either complete or absent.
"""

from __future__ import annotations

import json
import secrets
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kgrec.graph.bulk import NODE_TABLES, REL_TABLES, BulkGraph, node_properties, rel_properties, resolve
from kgrec.graph.records import GraphRecords
from kgrec.graph.schema import ENDPOINTS, STATE_ID, Label
from kgrec.graph.store_errors import StoreError

FORMAT = "kgrec-neo4j-csv"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

#: neo4j-admin's type of each Python value type (bool before int: a bool is an int); a
#: (lat, lon) pair is an item's location, a WGS-84 point written ``{latitude:…, longitude:…}``.
TYPES: dict[type, str] = {bool: "boolean", int: "long", float: "double", str: "string", tuple: "point{crs:WGS-84}"}

Signature = tuple[tuple[str, str], ...]


def export_neo4j_csv(records: GraphRecords, target: str | Path) -> dict[str, Any]:
    """Write ``records`` as import files into the new folder ``target``; returns the manifest."""
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise StoreError(f"{target} exists and is not an empty folder; choose a new one")
    graph = resolve(records)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    tmp.mkdir()  # made by mkdir, not mkdtemp, so it gets the umask's permissions
    try:
        manifest = _write(graph, tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        if target.exists():
            target.rmdir()
        tmp.rename(target)
    except UnicodeEncodeError as exc:
        raise StoreError(f"a value cannot be written as UTF-8: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _write(graph: BulkGraph, folder: Path) -> dict[str, Any]:
    multiline = False
    node_files, rel_files = [], []
    for spec in NODE_TABLES:
        label = spec.label.value
        hidden = set(graph.hidden) if spec.label is Label.ITEM else set()
        rows = (([key, label], _hidden(node_properties(spec, key, row), key in hidden))
                for key, row in graph.nodes[spec.label].items())
        for n, (signature, group) in enumerate(_group(rows, skip=spec.key).items()):
            name = f"nodes-{label}-{n}.csv"
            header = [f"{spec.key}:ID({label})", ":LABEL", *_columns(signature)]
            multiline |= _write_file(folder / name, header, signature, group)
            node_files.append(name)
    state = Label.STATE.value  # a new hidden_rev: a server that outlived the import re-reads the hidden set
    _write_file(folder / f"nodes-{state}-0.csv", [f"id:ID({state})", ":LABEL", "hidden_rev:string"],
                (("hidden_rev", "string"),), [([STATE_ID, state], {"hidden_rev": str(uuid.uuid4())})])
    node_files.append(f"nodes-{state}-0.csv")
    for rel_spec in REL_TABLES:
        start, end = (label.value for label in ENDPOINTS[rel_spec.rel])
        rel = rel_spec.rel.value
        rows = (([row[rel_spec.start], row[rel_spec.end], rel], rel_properties(rel_spec, row))
                for row in graph.rels.get(rel_spec.table, []))
        for n, (signature, group) in enumerate(_group(rows).items()):
            name = f"relationships-{rel}-{n}.csv"
            header = [f":START_ID({start})", f":END_ID({end})", ":TYPE", *_columns(signature)]
            multiline |= _write_file(folder / name, header, signature, group)
            rel_files.append(name)
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "nodes": node_files,
        "relationships": rel_files,
        "multiline": multiline,
        "counts": {"nodes": graph.node_count(), "relationships": graph.rel_count(), **graph.written},
    }


Entry = tuple[list[str], dict[str, Any]]


def _hidden(props: dict[str, Any], hidden: bool) -> dict[str, Any]:
    """An item's properties with ``hidden: true`` when it is flagged (as ``set_hidden`` stores it)."""
    if hidden:
        props["hidden"] = True
    return props


def _group(rows: Iterable[Entry], skip: str | None = None) -> dict[Signature, list[Entry]]:
    """Rows (leading fields, properties) by the (name, type) list of their properties."""
    groups: dict[Signature, list[Entry]] = {}
    for lead, props in rows:
        signature = tuple(sorted((name, TYPES[type(value)]) for name, value in props.items() if name != skip))
        groups.setdefault(signature, []).append((lead, props))
    return groups


def _columns(signature: Signature) -> list[str]:
    return [f"{name}:{kind}" for name, kind in signature]


def _write_file(path: Path, header: list[str], signature: Signature, rows: list[Entry]) -> bool:
    """Write one file: the header, then each row's leading fields and properties in the
    signature's order; returns whether any string spans lines."""
    multiline = False
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write(",".join(header) + "\n")
        for lead, props in rows:
            fields = []
            for value in (*lead, *(props[name] for name, _ in signature)):
                if type(value) is str:
                    multiline = multiline or "\n" in value or "\r" in value
                    fields.append('"' + value.replace('"', '""') + '"')
                elif type(value) is bool:
                    fields.append("true" if value else "false")
                elif type(value) is tuple:
                    fields.append(f'"{{latitude:{value[0]!r}, longitude:{value[1]!r}}}"')
                else:
                    fields.append(repr(value))
            out.write(",".join(fields) + "\n")
    return multiline
