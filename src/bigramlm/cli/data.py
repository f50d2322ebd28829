"""``bigramlm data info`` and ``data export``, and the column flags of instruction datasets
that ``train`` and ``brand init`` share."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from bigramlm.cli.common import add_json_flag, print_json
from bigramlm.errors import BigramLMError

#: The column flags, by the keyword ``load_data`` / ``read_table`` takes.
COLUMNS = ("instruction_col", "response_col", "intent_col", "category_col")


def add_column_args(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Column names of an instruction dataset (CSV/JSONL/Parquet)."""
    g = p.add_argument_group("instruction datasets (.csv, .jsonl, .parquet, or --data bitext)")
    g.add_argument("--instruction-col", default=None, help="column with the customer message (default: instruction)")
    g.add_argument("--response-col", default=None, help="column with the reply (default: response)")
    g.add_argument("--intent-col", default=None, help="column with the intent label (default: intent, when present)")
    g.add_argument("--category-col", default=None, help="column with the category label (default: category, when present)")
    return g


def add_labels_flag(group: argparse._ArgumentGroup) -> None:
    """``train --no-labels``: only training formats blocks with or without labels."""
    group.add_argument("--no-labels", dest="labels", action="store_false", default=None,
                       help="train on the notebook's plain blocks, without the intent/category lines")


def add_exclude_intents_flag(group: argparse._ArgumentGroup) -> None:
    """``train --exclude-intents a,b``: train and validate without those intents (test keeps them)."""
    group.add_argument("--exclude-intents", type=intent_names, default=None, metavar="INTENT[,INTENT...]",
                       help="leave these intents out of train and val (after the split; test keeps them), "
                            "e.g. to measure learning a new intent later")


def intent_names(text: str) -> list[str]:
    """``a, b,,c`` -> ["a", "b", "c"]: comma-separated, blanks dropped; naming none is an error."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r} names no intent (give INTENT[,INTENT...])")
    return names


def column_options(args: argparse.Namespace) -> dict[str, Any]:
    """The column flags (and ``--no-labels``, ``--exclude-intents``) that were given, as ``load_data`` keywords."""
    options = {name: getattr(args, name, None) for name in (*COLUMNS, "labels", "exclude_intents")}
    return {name: value for name, value in options.items() if value is not None}


def check_column_flags(source: str, args: argparse.Namespace) -> None:
    """Column flags only make sense for an instruction dataset; say so instead of ignoring them."""
    from bigramlm.data.registry import is_instruction_source

    given = column_options(args)
    if given and not is_instruction_source(source):
        flags = ", ".join("--no-labels" if name == "labels" else "--" + name.replace("_", "-") for name in given)
        raise BigramLMError(f"{flags} apply to instruction datasets (.csv/.jsonl/.parquet or bitext), not {source}")


def add_data_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect and export data sources", description="Look at a corpus as the lecture does.")
    data_sub = p.add_subparsers(dest="data_command", metavar="COMMAND")
    info = data_sub.add_parser("info", help="length, vocabulary, preview and context/target pairs")
    info.add_argument("source", help="a named corpus or a file path")
    info.add_argument("--block-size", type=int, default=8, help="window for the context -> target pairs (default 8)")
    info.add_argument("--preview", type=int, default=500, help="characters of preview (default 500)")
    add_json_flag(info)
    info.set_defaults(func=cmd_data_info)

    export = data_sub.add_parser("export", help="write an instruction dataset as the notebook's formatted text")
    export.add_argument("source", help="bitext or a .csv/.jsonl/.parquet file")
    export.add_argument("--out", required=True, type=Path, help="text file to write (customer_support_data.txt)")
    export.add_argument("--with-labels", action="store_true", help="add the intent/category lines to each block")
    add_column_args(export)
    export.set_defaults(func=cmd_data_export)


def cmd_data_info(args: argparse.Namespace) -> int:
    from bigramlm.data import data_info

    if args.block_size < 1:
        raise BigramLMError(f"block_size must be at least 1 (got {args.block_size})", param="block_size")
    info = dataclasses.asdict(data_info(args.source, args.block_size, max(args.preview, 0)))
    if args.json:
        print_json(info)
        return 0
    print(f"source: {info['source']} ({info['kind']})")
    print(f"length: {info['characters']:,} characters (train {info['train_characters']:,}, val {info['val_characters']:,})")
    print(f"vocabulary ({info['vocab_size']}): {info['vocab']!r}")
    print(f"vocab_size = {info['vocab_size']}")
    print("preview:")
    print(info["preview"])
    print(f"\ncontext -> target pairs of the first window (block_size={info['block_size']}):")
    for pair, text in zip(info["pairs"], info["pairs_text"]):
        print(f"when input is {pair['context']} the target is: {pair['target']}    ({text['context']!r} -> {text['target']!r})")
    return 0


def cmd_data_export(args: argparse.Namespace) -> int:
    from bigramlm.data.instructions import export_text, write_export
    from bigramlm._fs import check_writable

    check_writable(args.out, "out")  # before reading the table: a wrong --out fails at once
    text, table = export_text(args.source, args.with_labels, **column_options(args))
    write_export(text, args.out)
    skipped = f"; skipped {table.skipped} rows with an empty instruction or response" if table.skipped else ""
    print(f"wrote {args.out}: {len(table.rows):,} rows, {len(text):,} characters, {len(set(text))} distinct{skipped}")
    return 0
