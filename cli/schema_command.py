"""``kgrec schema``: the graph's labels and relationship types, as text or as an SVG diagram."""

from __future__ import annotations

import click

from kgrec.graph.schema import ENDPOINTS, KEY, PROPERTIES, Label, Rel


@click.command()
@click.option("--svg", "svg_path", type=click.Path(dir_okay=False), help="Write the schema diagram to this SVG file.")
def schema(svg_path: str | None) -> None:
    """Print the schema (or draw it with --svg) straight from graph/schema.py."""
    if svg_path:
        from kgrec.graph.diagram import write_svg

        click.echo(str(write_svg(svg_path)))
        return
    for lab in Label:
        props = ", ".join(f"{p} (key)" if p == KEY[lab] else p for p in PROPERTIES[lab])
        click.echo(f"(:{lab.value} {{{props}}})")
    for rel in Rel:
        src, dst = ENDPOINTS[rel]
        click.echo(f"(:{src.value})-[:{rel.value} {{{', '.join(PROPERTIES[rel])}}}]->(:{dst.value})")
